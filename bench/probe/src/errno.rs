//! Names for the errno values the probe reports, so that the JSON says
//! "EAGAIN" rather than a number that differs between architectures.

/// The symbolic name of `errno`, or `errno N` for one not listed here.
pub fn name(errno: i32) -> String {
    let known = match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EINTR => "EINTR",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::ENOSYS => "ENOSYS",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        _ => return format!("errno {errno}"),
    };
    known.to_string()
}

/// The name of the error the last failed libc call left.
pub fn last() -> String {
    name(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_values_have_names_and_others_a_number() {
        assert_eq!(super::name(libc::EAGAIN), "EAGAIN");
        assert_eq!(super::name(4095), "errno 4095");
    }
}
