//! The visualizer's picture, taken near the end of the run while the cluster still ran:
//! embedded in the page (the report stays one self-contained file), or why there is none.

use base64::Engine as _;

use super::html::{self, kv_table, Section};
use crate::results::VisualizerShot;

pub fn visualizer(shot: Option<&VisualizerShot>) -> Option<Section> {
    let shot = shot?;
    let mut body = kv_table(vec![
        ("Nodes drawn", shot.nodes.into()),
        ("Nodes answering", shot.active_nodes.into()),
        ("Connections drawn", shot.edges.into()),
    ]);
    let png = shot.png.as_ref().map(|p| (p, std::fs::read(p)));
    match png {
        Some((_, Ok(bytes))) => {
            body += &format!(
                "<figure class=\"screenshot\" id=\"visualizer-screenshot\">\n<img alt=\"the visualizer\" style=\"max-width:100%\" src=\"data:image/png;base64,{}\">\n<figcaption>{}</figcaption>\n</figure>\n",
                base64::engine::general_purpose::STANDARD.encode(bytes),
                html::escape("The live visualizer (neverust viz) as headless Chromium saw it: red the bootstrap, blue altruistic nodes, purple marketplace nodes, grey nodes not answering; lines are the connections the nodes reported, highlighted where data flowed during the last 2 s.")
            );
        }
        Some((path, Err(e))) => {
            body += &html::paragraph(&format!(
                "The picture {} cannot be read: {e}",
                path.display()
            ));
        }
        None => {}
    }
    if let Some(note) = &shot.note {
        body += &html::paragraph(note);
    }
    Some(Section::new("visualizer", "Visualizer", body))
}
