//! isola-init: the guest's static PID 1. It is written with the VM-backend
//! issue; until then it only says so.

fn main() {
    eprintln!("isola-init: not implemented yet (see the VM backend issue)");
    std::process::exit(1);
}
