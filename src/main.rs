fn main() -> std::process::ExitCode {
    glov_cuda::cli::main()
}
