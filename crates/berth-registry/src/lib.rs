//! berth's OCI Distribution registry server (`berth registry serve`).
