//! What stopped a kernel: the fault every check and the dispatcher return, and its kind.

/// What stopped a kernel: the driver turns `kind` into its error code and prints `report`.
#[derive(Debug, Clone)]
pub struct Fault {
    pub kind: FaultKind,
    /// Names the kernel, block, thread, instruction (PTX line and text), address and nearest allocation.
    pub report: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// An access outside every live allocation or window (`CUDA_ERROR_ILLEGAL_ADDRESS`).
    IllegalAddress,
    /// An access not aligned to its width (`CUDA_ERROR_MISALIGNED_ADDRESS`).
    Misaligned,
    /// A shared-memory data race between barriers.
    Race,
    /// A barrier or collective not reached by all the threads it names, or a deadlock.
    Sync,
    /// A read of device memory never written.
    Uninitialized,
    /// Anything else undefined: division by zero is not one (PTX defines it); an unsupported operand at run time is.
    Undefined,
}
