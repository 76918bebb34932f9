//! Text generation: sampling, stop conditions, batched decoding.
