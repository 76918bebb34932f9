//! The kernels compiled into the binary: `selftest --list` names exactly the `extern "C" __global__` functions of
//! `kernels/*.cu` (read here from the sources, independently of build.rs's PTX parsing); in a build without
//! kernels (ignored here otherwise), what the binary says where kernels are asked for. CI builds with
//! `GLOV_REQUIRE_KERNELS=1`, where a missing compiler fails the build. Also: what the CUDA selftest answers
//! without a GPU, and to a `GLOV_CUDA_DEBUG_ALLOC` that is neither 0 nor 1.

use std::process::Command;

fn kernel_entries_in_sources() -> Vec<(String, Vec<String>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cu"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).unwrap();
            let mut names = Vec::new();
            for piece in text.split("extern \"C\" __global__").skip(1) {
                // `void name(`, possibly `void __launch_bounds__(...) name(`.
                let mut rest = piece.split_once("void").unwrap().1.trim_start();
                if let Some(bounded) = rest.strip_prefix("__launch_bounds__") {
                    rest = bounded.split_once(')').unwrap().1;
                }
                names.push(rest.split('(').next().unwrap().trim().to_string());
            }
            (path.file_stem().unwrap().to_string_lossy().into_owned(), names)
        })
        .collect()
}

#[test]
#[cfg_attr(
    not(glov_kernels),
    ignore = "needs the CUDA kernels: `bash scripts/setup-cuda.sh`, then `cargo test --release --locked`"
)]
fn selftest_list_names_every_kernel() {
    let out = Command::new(env!("CARGO_BIN_EXE_glov-cuda")).args(["selftest", "--list"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    // The pinned compilers of scripts/setup-cuda.sh, PTX that CUDA 12.2 drivers load, and machine code for the
    // common server cards.
    assert!(text.starts_with("kernels compiled by NVRTC 12.2, ptxas 12.2.140\n"), "{text}");
    for line in [
        "PTX: ISA 8.2 for compute_80",
        "machine code: sm_80, sm_86, sm_89, sm_90, loaded when the card matches",
        "oldest driver: CUDA 12.2 (R535)",
    ] {
        assert!(text.contains(line), "selftest --list does not say {line:?}:\n{text}");
    }
    let listed: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("  ")).collect();
    let mut declared = Vec::new();
    for (module, names) in kernel_entries_in_sources() {
        assert!(!names.is_empty(), "{module}.cu declares no kernel");
        assert!(text.contains(&format!("\n{module} (")), "module {module} is not listed:\n{text}");
        declared.extend(names);
    }
    assert_eq!(listed, declared, "the kernels listed are those the sources declare, in order");
}

/// A build without kernels says so, and how to get them, wherever the kernels are asked for: `selftest --list`,
/// and `--device cuda` (before it looks for a driver).
#[test]
#[cfg_attr(glov_kernels, ignore = "needs a build without the CUDA kernels (.ci/run makes one)")]
fn a_build_without_kernels_says_how_to_get_them() {
    let bin = env!("CARGO_BIN_EXE_glov-cuda");
    let fix = "run `bash scripts/setup-cuda.sh`, then rebuild (`cargo build --release`)";
    let out = Command::new(bin).args(["selftest", "--list"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.starts_with("built without CUDA kernels") && text.contains(fix), "{text}");
    let clip = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clip-tiny-quickgelu");
    let probe = ["--device", "cuda", "probe", "clip", "--model", clip.to_str().unwrap(), "--text", "a photo"];
    for args in [&["--device", "cuda", "selftest", "--quick"][..], &probe] {
        let out = Command::new(bin).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("this glov-cuda was built without CUDA kernels") && stderr.contains(fix), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn selftest_runs_its_harness_on_the_cpu_and_answers_without_a_gpu() {
    let bin = env!("CARGO_BIN_EXE_glov-cuda");
    let out = Command::new(bin).args(["--device", "cpu", "selftest", "--quick"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("linear") && stdout.contains("attention") && stdout.contains("score"), "{stdout}");
    assert!(stdout.lines().last().unwrap().starts_with("all "), "{stdout}");
    // Without a GPU (as in CI) the CUDA selftest says what is missing; with one it runs.
    let out = Command::new(bin).args(["--device", "cuda", "selftest", "--quick"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr.contains("no NVIDIA driver") || stderr.contains("built without CUDA kernels"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn a_debug_alloc_setting_other_than_0_or_1_is_an_error_naming_the_variable() {
    let out = Command::new(env!("CARGO_BIN_EXE_glov-cuda"))
        .env("GLOV_CUDA_DEBUG_ALLOC", "yes")
        .args(["--device", "cuda", "selftest", "--quick"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("GLOV_CUDA_DEBUG_ALLOC must be 0 or 1, not \"yes\""), "{stderr}");
}
