//! kadm-kubelet: not built yet. It refuses to start rather than pretend to run.

fn main() {
    kadm_base::refuse_unimplemented("kadm-kubelet", "see the open issues for its delivery");
}
