//! kadm-scheduler: not built yet. It refuses to start rather than pretend to run.

fn main() {
    kadm_base::refuse_unimplemented("kadm-scheduler", "see the open issues for its delivery");
}
