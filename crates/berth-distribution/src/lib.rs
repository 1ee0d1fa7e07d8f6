//! berth's OCI Distribution client: what berthd pulls and pushes with.
