//! isola-vmm: isola's KVM monitor as a process of its own, which isola
//! starts in its jail (see `isola_vm::vmm`).

fn main() {
    std::process::exit(isola_vm::vmm::child::main());
}
