//! The CUDA kernels embedded at build time (see `build.rs`): one module per `kernels/*.cu` file, as PTX for
//! compute capability 8.0 and up (ISA 8.2, loaded by CUDA 12.2 drivers and newer) and as machine code for sm_80,
//! sm_86, sm_89 and sm_90.

/// Machine code of one module for one architecture.
#[derive(Clone, Copy, Debug)]
pub struct Cubin {
    /// The architecture as `10 * major + minor` (90 for sm_90).
    pub arch: u32,
    pub image: &'static [u8],
}

/// One compiled `kernels/*.cu` file.
#[derive(Clone, Copy, Debug)]
pub struct KernelModule {
    /// The file's stem (`gemm` for `kernels/gemm.cu`).
    pub name: &'static str,
    pub ptx: &'static str,
    pub cubins: &'static [Cubin],
    /// The kernels' entry names, in file order.
    pub entries: &'static [&'static str],
}

include!(concat!(env!("OUT_DIR"), "/kernels.rs"));

/// The oldest driver that loads the embedded PTX, as `cuDriverGetVersion` reports it (12020: CUDA 12.2, R535).
pub const MIN_DRIVER: i32 = 12020;

/// Whether this binary carries kernels (it was built with the CUDA compilers).
pub fn built_with_kernels() -> bool {
    COMPILERS.is_some()
}

impl KernelModule {
    /// The machine code that runs on a card of compute capability `(major, minor)`: machine code runs on its own
    /// major version at its minor version or a later one, so the newest such image is taken. `None`: only the PTX.
    pub fn cubin_for(&self, capability: (i32, i32)) -> Option<&'static Cubin> {
        self.cubins
            .iter()
            .filter(|c| c.arch / 10 == capability.0 as u32 && c.arch % 10 <= capability.1 as u32)
            .max_by_key(|c| c.arch)
    }
}

/// The architectures with machine code embedded (`sm_80, sm_86, ...`), or `none`.
pub fn cubin_archs() -> String {
    let mut archs: Vec<u32> = MODULES.iter().flat_map(|m| m.cubins.iter().map(|c| c.arch)).collect();
    archs.sort_unstable();
    archs.dedup();
    if archs.is_empty() {
        return "none".into();
    }
    archs.iter().map(|a| format!("sm_{a}")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMAGE: &[u8] = &[0x7f, b'E', b'L', b'F'];
    const MODULE: KernelModule = KernelModule {
        name: "test",
        ptx: "",
        cubins: &[
            Cubin { arch: 80, image: IMAGE },
            Cubin { arch: 86, image: IMAGE },
            Cubin { arch: 89, image: IMAGE },
            Cubin { arch: 90, image: IMAGE },
        ],
        entries: &[],
    };

    #[test]
    fn machine_code_is_chosen_within_the_major_version() {
        let arch = |cc| MODULE.cubin_for(cc).map(|c| c.arch);
        assert_eq!(arch((8, 0)), Some(80));
        assert_eq!(arch((8, 6)), Some(86));
        assert_eq!(arch((8, 7)), Some(86), "Orin runs sm_86 code");
        assert_eq!(arch((8, 9)), Some(89));
        assert_eq!(arch((9, 0)), Some(90));
        assert_eq!(arch((10, 0)), None, "Blackwell compiles the PTX");
        assert_eq!(arch((12, 0)), None);
        assert_eq!(arch((7, 5)), None);
    }
}
