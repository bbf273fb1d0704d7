//! Mount orchestration (integrator).
