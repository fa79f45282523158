//! kadm-proxy: not built yet. It refuses to start rather than pretend to run.

fn main() {
    kadm_base::refuse_unimplemented("kadm-proxy", "see the open issues for its delivery");
}
