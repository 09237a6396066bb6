// Drawing the connections, on a canvas under the nodes' SVG. A 200-node cluster reports
// some 20,000 of them: as SVG elements, one snapshot took 170 ms to draw; as 2D-canvas
// lines, a moving layout ran at 10 fps without a GPU. WebGL draws them all in one call
// (SwiftShader does it in software where there is no GPU); the 2D canvas remains for
// browsers without WebGL. Both draw the idle connections faint (fainter the more there
// are, or thousands would be a solid disc) and the ones carrying data on top, orange and
// thicker with their rate.
//
// Measured at 200 nodes in headless Chromium without a GPU (scripts/viz-scale.py),
// WebGL through SwiftShader was slower than the 2D canvas (5 against 12 fps while
// dragging): WebGL is used only when a GPU draws it.
"use strict";

const EDGE_RGB = [154 / 255, 163 / 255, 177 / 255];
const ACTIVE_RGB = [243 / 255, 156 / 255, 18 / 255];

function idleAlpha(count) {
  return Math.max(0.06, Math.min(0.5, 60 / Math.max(1, count)));
}

function isActive(l) {
  return (l.rate || 0) > 0;
}

// A renderer: draw(links, zoom transform, width(rate)) → {idle, active} lines drawn.
// `?edges=webgl` or `?edges=2d` in the page's URL chooses one (scripts/viz-scale.py
// measures both).
function edgeRenderer(canvas) {
  const asked = new URLSearchParams(location.search).get("edges");
  const webgl = asked === "webgl" || (asked !== "2d" && hardwareWebgl());
  return (webgl && webglEdges(canvas)) || canvasEdges(canvas);
}

// Asked of a canvas of its own: once a canvas has a WebGL context it can have no other.
function hardwareWebgl() {
  const gl = document.createElement("canvas").getContext("webgl");
  if (!gl) return false;
  const info = gl.getExtension("WEBGL_debug_renderer_info");
  const renderer = info ? String(gl.getParameter(info.UNMASKED_RENDERER_WEBGL)) : "";
  gl.getExtension("WEBGL_lose_context")?.loseContext();
  return !/swiftshader|llvmpipe|software/i.test(renderer);
}

function webglEdges(canvas) {
  const gl = canvas.getContext("webgl", { antialias: false, alpha: true });
  if (!gl) return null;
  const compile = (type, source) => {
    const s = gl.createShader(type);
    gl.shaderSource(s, source);
    gl.compileShader(s);
    return s;
  };
  const program = gl.createProgram();
  // World coordinates in; the zoom and the viewport centre as one scale and offset.
  gl.attachShader(
    program,
    compile(
      gl.VERTEX_SHADER,
      "attribute vec2 p; uniform vec2 scale; uniform vec2 offset;" +
        "void main() { gl_Position = vec4(p * scale + offset, 0.0, 1.0); }"
    )
  );
  // Premultiplied output, as the page composites the canvas.
  gl.attachShader(
    program,
    compile(
      gl.FRAGMENT_SHADER,
      "precision mediump float; uniform vec4 color;" +
        "void main() { gl_FragColor = vec4(color.rgb * color.a, color.a); }"
    )
  );
  gl.linkProgram(program);
  if (!gl.getProgramParameter(program, gl.LINK_STATUS)) return null;
  const where = {
    p: gl.getAttribLocation(program, "p"),
    scale: gl.getUniformLocation(program, "scale"),
    offset: gl.getUniformLocation(program, "offset"),
    color: gl.getUniformLocation(program, "color"),
  };
  const buffer = gl.createBuffer();
  let vertices = new Float32Array(0);

  return {
    kind: "webgl",
    draw(links, t, width) {
      const dpr = window.devicePixelRatio || 1;
      const w = canvas.width / dpr;
      const h = canvas.height / dpr;
      gl.viewport(0, 0, canvas.width, canvas.height);
      gl.clearColor(0, 0, 0, 0);
      gl.clear(gl.COLOR_BUFFER_BIT);
      gl.useProgram(program);
      gl.enable(gl.BLEND);
      gl.blendFunc(gl.ONE, gl.ONE_MINUS_SRC_ALPHA);
      gl.uniform2f(where.scale, (2 * t.k) / w, (-2 * t.k) / h);
      gl.uniform2f(where.offset, (2 * (t.x + w / 2)) / w - 1, 1 - (2 * (t.y + h / 2)) / h);

      // Idle lines: two vertices each. Active ones: two triangles each, as wide as their
      // rate says (WebGL lines are one pixel wide).
      const active = links.filter(isActive);
      const idle = links.length - active.length;
      const need = idle * 4 + active.length * 12;
      if (vertices.length < need) vertices = new Float32Array(need * 2);
      let i = 0;
      for (const l of links) {
        if (isActive(l)) continue;
        vertices[i++] = l.source.x;
        vertices[i++] = l.source.y;
        vertices[i++] = l.target.x;
        vertices[i++] = l.target.y;
      }
      const idleEnd = i;
      for (const l of active) {
        const dx = l.target.x - l.source.x;
        const dy = l.target.y - l.source.y;
        const len = Math.hypot(dx, dy) || 1;
        const half = width(l.rate) / 2;
        const nx = (-dy / len) * half;
        const ny = (dx / len) * half;
        const a = [l.source.x + nx, l.source.y + ny];
        const b = [l.source.x - nx, l.source.y - ny];
        const c = [l.target.x + nx, l.target.y + ny];
        const d = [l.target.x - nx, l.target.y - ny];
        for (const v of [a, b, c, c, b, d]) {
          vertices[i++] = v[0];
          vertices[i++] = v[1];
        }
      }
      gl.bindBuffer(gl.ARRAY_BUFFER, buffer);
      gl.bufferData(gl.ARRAY_BUFFER, vertices.subarray(0, i), gl.DYNAMIC_DRAW);
      gl.enableVertexAttribArray(where.p);
      gl.vertexAttribPointer(where.p, 2, gl.FLOAT, false, 0, 0);
      gl.uniform4f(where.color, ...EDGE_RGB, idleAlpha(idle));
      gl.drawArrays(gl.LINES, 0, idleEnd / 2);
      gl.uniform4f(where.color, ...ACTIVE_RGB, 0.95);
      gl.drawArrays(gl.TRIANGLES, idleEnd / 2, (i - idleEnd) / 2);
      return { idle, active: active.length };
    },
  };
}

function canvasEdges(canvas) {
  const ctx = canvas.getContext("2d");
  const css = (rgb) => `rgb(${rgb.map((c) => Math.round(c * 255)).join(",")})`;
  return {
    kind: "2d",
    draw(links, t, width) {
      const dpr = window.devicePixelRatio || 1;
      const w = canvas.width / dpr;
      const h = canvas.height / dpr;
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      ctx.setTransform(dpr * t.k, 0, 0, dpr * t.k, dpr * (t.x + w / 2), dpr * (t.y + h / 2));
      let idle = 0;
      ctx.beginPath();
      for (const l of links) {
        if (isActive(l)) continue;
        ctx.moveTo(l.source.x, l.source.y);
        ctx.lineTo(l.target.x, l.target.y);
        idle += 1;
      }
      ctx.strokeStyle = css(EDGE_RGB);
      ctx.globalAlpha = idleAlpha(idle);
      ctx.lineWidth = 1;
      ctx.stroke();
      ctx.globalAlpha = 0.95;
      ctx.strokeStyle = css(ACTIVE_RGB);
      let active = 0;
      for (const l of links) {
        if (!isActive(l)) continue;
        ctx.beginPath();
        ctx.moveTo(l.source.x, l.source.y);
        ctx.lineTo(l.target.x, l.target.y);
        ctx.lineWidth = width(l.rate);
        ctx.stroke();
        active += 1;
      }
      ctx.globalAlpha = 1;
      return { idle, active };
    },
  };
}
