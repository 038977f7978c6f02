//! The rule for the names people give isola's things (volumes, networks),
//! Docker's, so that a name is a safe single path component and never hidden.

/// `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most `max` bytes; the reason when not.
pub fn check_name(name: &str, max: usize) -> Result<(), String> {
    let Some(first) = name.chars().next() else {
        return Err("it is empty".into());
    };
    if name.len() > max {
        return Err(format!("it is longer than {max} characters"));
    }
    if !first.is_ascii_alphanumeric() {
        return Err("it must start with a letter or a digit".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!(
            "{c:?} is not allowed (use letters, digits, '_', '.' and '-')"
        ));
    }
    Ok(())
}
