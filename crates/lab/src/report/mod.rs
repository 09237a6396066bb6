pub fn write_report(
    r: &crate::results::Results,
    dir: &std::path::Path,
) -> std::io::Result<std::path::PathBuf> {
    std::fs::write(dir.join("results.json"), serde_json::to_vec_pretty(r)?)?;
    Ok(dir.join("results.json"))
}
