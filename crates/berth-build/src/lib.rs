//! Dockerfile parsing and the build plan.
