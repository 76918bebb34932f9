//! Build script: records the engine's source revision, and compiles the CUDA kernels.
//!
//! **Revision.** `GLOV_CUDA_COMMIT` (shown by `--version` and written into result files) is read from git when the
//! source is a git checkout.
//!
//! **Kernels.** Every `kernels/*.cu` is compiled by NVRTC 12.2 to PTX for `compute_80` (PTX ISA 8.2, which drivers
//! from CUDA 12.2 (R535) on load; the driver compiles it at load time for any card of compute capability 8.0 or
//! newer, Blackwell included), and the PTX is assembled by ptxas 12.2 into machine code for sm_80, sm_86, sm_89
//! and sm_90, which the runtime loads when the card matches, so that common servers start without compiling PTX.
//! A build whose PTX is newer than ISA 8.2 fails. The register / shared-memory / spill report of every kernel is
//! written to `$OUT_DIR/ptxas-report.txt`; PTX and machine code are embedded in the binary through
//! `$OUT_DIR/kernels.rs`. The compilers are looked for in `$CUDA_HOME`, `$CUDA_PATH` (a CUDA toolkit) and the
//! project-local install of `scripts/setup-cuda.sh` (`.cuda/`). Without them the build succeeds with a warning and
//! the CUDA backend reports that it was built without kernels; `GLOV_REQUIRE_KERNELS=1` makes that an error.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    record_commit();
    compile_kernels();
}

fn record_commit() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .is_some_and(|out| !out.stdout.is_empty());
    println!("cargo:rustc-env=GLOV_CUDA_COMMIT={commit}{}", if dirty { "-modified" } else { "" });
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/index");
}

/// The machine-code architectures embedded beside the PTX.
const CUBIN_ARCHS: [u32; 4] = [80, 86, 89, 90];

/// The newest PTX ISA the oldest supported driver (CUDA 12.2) loads.
const MAX_PTX_ISA: (u32, u32) = (8, 2);

/// The kernel compilers: NVRTC's library, the CUDA headers it compiles against, and ptxas.
struct Toolkit {
    nvrtc: PathBuf,
    include: PathBuf,
    ptxas: PathBuf,
}

/// The first complete toolkit found, in the documented order.
fn find_toolkit(root: &Path) -> Option<Toolkit> {
    let mut candidates = Vec::new();
    for var in ["CUDA_HOME", "CUDA_PATH"] {
        if let Some(home) = std::env::var_os(var).map(PathBuf::from) {
            candidates.push(Toolkit {
                nvrtc: home.join("lib64/libnvrtc.so"),
                include: home.join("include"),
                ptxas: home.join("bin/ptxas"),
            });
        }
    }
    let pip = root.join(".cuda/nvidia");
    candidates.push(Toolkit {
        nvrtc: pip.join("cuda_nvrtc/lib/libnvrtc.so.12"),
        include: pip.join("cuda_runtime/include"),
        ptxas: pip.join("cuda_nvcc/bin/ptxas"),
    });
    candidates.into_iter().find(|t| t.nvrtc.is_file() && t.ptxas.is_file() && t.include.join("cuda_bf16.h").is_file())
}

fn run(command: &mut Command, what: &str) -> Result<String, String> {
    let output = command.output().map_err(|e| format!("{what}: cannot run {command:?}: {e}"))?;
    let text = String::from_utf8_lossy(&output.stderr).into_owned() + &String::from_utf8_lossy(&output.stdout);
    if output.status.success() { Ok(text) } else { Err(format!("{what} failed:\n{text}")) }
}

type NvrtcCreate = unsafe extern "C" fn(
    *mut *mut c_void,
    *const c_char,
    *const c_char,
    c_int,
    *const *const c_char,
    *const *const c_char,
) -> c_int;
type NvrtcCompile = unsafe extern "C" fn(*mut c_void, c_int, *const *const c_char) -> c_int;
type NvrtcSize = unsafe extern "C" fn(*mut c_void, *mut usize) -> c_int;
type NvrtcText = unsafe extern "C" fn(*mut c_void, *mut c_char) -> c_int;
type NvrtcDestroy = unsafe extern "C" fn(*mut *mut c_void) -> c_int;
type NvrtcVersion = unsafe extern "C" fn(*mut c_int, *mut c_int) -> c_int;

/// NVRTC, loaded from the toolkit's shared library (a program per source; distinct programs compile in parallel).
struct Nvrtc {
    library: libloading::Library,
}

impl Nvrtc {
    fn open(path: &Path) -> Result<Self, String> {
        // SAFETY: loading NVRTC runs no initialisation code with preconditions.
        let library = unsafe { libloading::Library::new(path) }.map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self { library })
    }

    fn symbol<T: Copy>(&self, name: &str) -> Result<T, String> {
        // SAFETY: every type asked for matches the declaration of that function in nvrtc.h.
        unsafe { self.library.get::<T>(name.as_bytes()).map(|s| *s).map_err(|e| format!("NVRTC has no {name}: {e}")) }
    }

    fn version(&self) -> Result<String, String> {
        let (mut major, mut minor) = (0, 0);
        // SAFETY: two valid out-pointers.
        unsafe { self.symbol::<NvrtcVersion>("nvrtcVersion")?(&mut major, &mut minor) };
        Ok(format!("NVRTC {major}.{minor}"))
    }

    /// Compiles one CUDA C++ source to PTX; the error holds NVRTC's log.
    fn compile(&self, source: &str, name: &str, options: &[String]) -> Result<String, String> {
        let create = self.symbol::<NvrtcCreate>("nvrtcCreateProgram")?;
        let compile = self.symbol::<NvrtcCompile>("nvrtcCompileProgram")?;
        let log_size = self.symbol::<NvrtcSize>("nvrtcGetProgramLogSize")?;
        let log_text = self.symbol::<NvrtcText>("nvrtcGetProgramLog")?;
        let ptx_size = self.symbol::<NvrtcSize>("nvrtcGetPTXSize")?;
        let ptx_text = self.symbol::<NvrtcText>("nvrtcGetPTX")?;
        let destroy = self.symbol::<NvrtcDestroy>("nvrtcDestroyProgram")?;
        let c = |s: &str| CString::new(s).map_err(|_| format!("{name}: a NUL byte in the source or an option"));
        let (source, file) = (c(source)?, c(name)?);
        let options = options.iter().map(|o| c(o)).collect::<Result<Vec<_>, _>>()?;
        let pointers: Vec<*const c_char> = options.iter().map(|o| o.as_ptr()).collect();
        let read = |size: NvrtcSize, text: NvrtcText, program: *mut c_void| -> String {
            let mut bytes = 0usize;
            // SAFETY: a live program; the buffer holds the size NVRTC reported, NUL included.
            unsafe {
                size(program, &mut bytes);
                let mut buffer = vec![0 as c_char; bytes.max(1)];
                text(program, buffer.as_mut_ptr());
                CStr::from_ptr(buffer.as_ptr()).to_string_lossy().into_owned()
            }
        };
        let mut program = std::ptr::null_mut();
        // SAFETY: NUL-terminated strings that outlive the calls; the program is destroyed once, below.
        unsafe {
            if create(&mut program, source.as_ptr(), file.as_ptr(), 0, std::ptr::null(), std::ptr::null()) != 0 {
                return Err(format!("NVRTC could not create a program for {name}"));
            }
            let status = compile(program, pointers.len() as c_int, pointers.as_ptr());
            let result = if status == 0 {
                Ok(read(ptx_size, ptx_text, program))
            } else {
                Err(format!("NVRTC of {name} failed (status {status}):\n{}", read(log_size, log_text, program)))
            };
            destroy(&mut program);
            result
        }
    }
}

/// The PTX ISA version a PTX text declares (`.version 8.2`).
fn ptx_isa(ptx: &str) -> Option<(u32, u32)> {
    let version = ptx.lines().find_map(|l| l.trim().strip_prefix(".version "))?;
    let (major, minor) = version.trim().split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// One kernel file's build: PTX, machine code for every architecture, and the ptxas reports.
fn build_one(nvrtc: &Nvrtc, toolkit: &Toolkit, source: &Path, out: &Path) -> Result<(String, String), String> {
    let stem = source.file_stem().and_then(|s| s.to_str()).ok_or("kernel file names are UTF-8")?.to_string();
    let text = std::fs::read_to_string(source).map_err(|e| format!("{}: {e}", source.display()))?;
    let kernels = source.parent().ok_or("kernel files sit in kernels/")?;
    let options = [
        "--gpu-architecture=compute_80".to_string(),
        "-std=c++17".into(),
        "--use_fast_math".into(),
        "--generate-line-info".into(),
        format!("-I{}", kernels.display()),
        format!("-I{}", toolkit.include.display()),
    ];
    let ptx_text = nvrtc.compile(&text, &source.display().to_string(), &options)?;
    match ptx_isa(&ptx_text) {
        Some(isa) if isa <= MAX_PTX_ISA => {}
        found => {
            return Err(format!(
                "{}: the compiler wrote PTX ISA {found:?}, newer than {MAX_PTX_ISA:?}, which CUDA 12.2 drivers load; \
                 build with the compilers of scripts/setup-cuda.sh",
                source.display()
            ));
        }
    }
    let ptx = out.join(format!("{stem}.ptx"));
    std::fs::write(&ptx, &ptx_text).map_err(|e| format!("{}: {e}", ptx.display()))?;
    let mut report = String::new();
    for arch in CUBIN_ARCHS {
        let log = run(
            Command::new(&toolkit.ptxas)
                .args(["-v", "-O3", &format!("-arch=sm_{arch}"), "-o"])
                .arg(out.join(format!("{stem}.sm_{arch}.cubin")))
                .arg(&ptx),
            &format!("ptxas sm_{arch} of {}", source.display()),
        )?;
        report.push_str(&format!("== {stem}.cu, sm_{arch}\n{log}\n"));
    }
    Ok((stem, report))
}

/// Kernel entry names in a PTX file (`.entry name(`).
fn entries(ptx: &str) -> Vec<String> {
    ptx.lines()
        .filter_map(|line| line.trim_start().strip_prefix(".visible .entry "))
        .map(|rest| rest.split(['(', ' ']).next().unwrap_or("").to_string())
        .collect()
}

fn compile_kernels() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    for var in ["CUDA_HOME", "CUDA_PATH", "GLOV_REQUIRE_KERNELS"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=kernels");
    let mut sources: Vec<PathBuf> = std::fs::read_dir(root.join("kernels"))
        .map(|dir| dir.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    sources.retain(|p| p.extension().is_some_and(|e| e == "cu" || e == "cuh"));
    sources.sort();
    for source in &sources {
        println!("cargo:rerun-if-changed={}", source.display());
    }
    sources.retain(|p| p.extension().is_some_and(|e| e == "cu"));
    let require = std::env::var("GLOV_REQUIRE_KERNELS").is_ok_and(|v| v == "1");
    // `cfg(glov_kernels)`: the tests that need the kernels are ignored, with the reason, in a build without them.
    println!("cargo:rustc-check-cfg=cfg(glov_kernels)");

    let Some(toolkit) = find_toolkit(&root) else {
        let message = "NVRTC and ptxas not found (CUDA_HOME, CUDA_PATH, .cuda/): building without CUDA kernels; \
                       run `bash scripts/setup-cuda.sh` and rebuild";
        if require {
            panic!("GLOV_REQUIRE_KERNELS=1: {message}");
        }
        println!("cargo:warning={message}");
        write_index(&out, None, &[]);
        return;
    };
    for path in [&toolkit.nvrtc, &toolkit.ptxas] {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    let nvrtc = Nvrtc::open(&toolkit.nvrtc).unwrap_or_else(|e| panic!("{e}"));
    let ptxas_version = run(Command::new(&toolkit.ptxas).arg("--version"), "ptxas --version")
        .map(|v| v.split_whitespace().find_map(|w| w.strip_prefix('V')).unwrap_or("?").to_string())
        .unwrap_or_else(|e| panic!("{e}"));
    let compilers = format!("{}, ptxas {ptxas_version}", nvrtc.version().unwrap_or_else(|e| panic!("{e}")));

    let results: Vec<Result<(String, String), String>> = std::thread::scope(|scope| {
        let handles: Vec<_> =
            sources.iter().map(|source| scope.spawn(|| build_one(&nvrtc, &toolkit, source, &out))).collect();
        handles.into_iter().map(|h| h.join().expect("a kernel build thread")).collect()
    });
    let mut built = Vec::new();
    let mut report = format!("ptxas resource report ({compilers})\n\n");
    for result in results {
        match result {
            Ok((stem, log)) => {
                report.push_str(&log);
                built.push(stem);
            }
            Err(e) => panic!("{e}"),
        }
    }
    std::fs::write(out.join("ptxas-report.txt"), report).expect("writing the ptxas report");
    write_index(&out, Some(&compilers), &built);
    println!("cargo:rustc-cfg=glov_kernels");
}

/// `$OUT_DIR/kernels.rs`: every module's name, PTX, machine code and entry names, and what compiled them.
fn write_index(out: &Path, compilers: Option<&str>, built: &[String]) {
    let mut code =
        String::from("/// The kernel modules embedded at build time.\npub static MODULES: &[KernelModule] = &[\n");
    let mut isa = None;
    for stem in built {
        let ptx = std::fs::read_to_string(out.join(format!("{stem}.ptx"))).expect("the PTX just written");
        isa = isa.max(ptx_isa(&ptx));
        let names: Vec<String> = entries(&ptx).into_iter().map(|e| format!("{e:?}")).collect();
        let cubins: Vec<String> = CUBIN_ARCHS
            .iter()
            .map(|arch| {
                format!(
                    "Cubin {{ arch: {arch}, image: include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{stem}.sm_{arch}.cubin\")) }}"
                )
            })
            .collect();
        code.push_str(&format!(
            "    KernelModule {{ name: {stem:?}, ptx: include_str!(concat!(env!(\"OUT_DIR\"), \"/{stem}.ptx\")), \
             cubins: &[{}], entries: &[{}] }},\n",
            cubins.join(", "),
            names.join(", ")
        ));
    }
    code.push_str("];\n");
    code.push_str(&format!(
        "/// The compilers that built them, or `None` when the build had none.\npub const COMPILERS: Option<&str> = \
         {compilers:?};\n/// The PTX ISA version of the embedded PTX (major, minor).\npub const PTX_ISA: (u32, u32) = \
         {:?};\n",
        isa.unwrap_or((0, 0))
    ));
    std::fs::write(out.join("kernels.rs"), code).expect("writing kernels.rs");
}
