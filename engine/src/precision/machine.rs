//! This machine as far as int8's speed and results go: the CPU, its vector instruction sets and
//! the ONNX Runtime library. A check is stored per machine and trusted only there.

/// The CPU's model name, and which of the instruction sets that matter for int8 and bf16
/// (VNNI, bf16, AMX) it has, as /proc/cpuinfo names them.
pub fn cpu() -> (String, Vec<&'static str>) {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        cpuinfo
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split(':').nth(1))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let flags = field("flags");
    let flags: Vec<&str> = flags.split_whitespace().collect();
    let have = [
        "avx2",
        "avx512f",
        "avx512bw",
        "avx512_vnni",
        "avx_vnni",
        "avx512_bf16",
        "amx_int8",
        "amx_bf16",
    ]
    .into_iter()
    .filter(|w| flags.contains(w))
    .collect();
    (field("model name"), have)
}

/// This machine as far as int8 speed and results go: the CPU, its vector instruction sets and
/// the ONNX Runtime library. A stored check from another machine is not trusted here.
pub fn machine() -> String {
    let (model, flags) = cpu();
    let arch = std::env::consts::ARCH;
    format!(
        "{}, {arch} [{}], {}",
        if model.is_empty() { arch } else { &model },
        flags.join(" "),
        crate::embed::ort_vision::library_path().display()
    )
}
