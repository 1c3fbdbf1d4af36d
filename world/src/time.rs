//! Simulated time: a `u64` of nanoseconds. Names carry their unit (`_ns`).

/// One microsecond in nanoseconds.
pub const NS_PER_US: u64 = 1_000;
/// One millisecond in nanoseconds.
pub const NS_PER_MS: u64 = 1_000_000;
/// One second in nanoseconds.
pub const NS_PER_S: u64 = 1_000_000_000;

/// Parses a human duration such as `"1.5s"`, `"250ms"`, `"20us"` or `"10ns"` into
/// nanoseconds. Fractions are allowed down to the nanosecond; anything finer is an error,
/// so a scenario never silently means something other than what it says.
pub fn parse_duration_ns(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if text.starts_with('-') {
        return Err(format!("duration `{text}` cannot be negative"));
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("duration `{text}` has no unit (use ns, us, ms, s, m or h)"))?;
    let (number, unit) = text.split_at(split);
    let unit = unit.trim_start();
    let unit_ns: u64 = match unit {
        "ns" => 1,
        "us" | "µs" => NS_PER_US,
        "ms" => NS_PER_MS,
        "s" => NS_PER_S,
        "m" => 60 * NS_PER_S,
        "h" => 3600 * NS_PER_S,
        _ => return Err(format!("duration `{text}` has unknown unit `{unit}`")),
    };
    let (whole, fraction) = match number.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (number, ""),
    };
    if whole.is_empty() && fraction.is_empty() {
        return Err(format!("duration `{text}` has no number"));
    }
    let overflow = || format!("duration `{text}` is too long");
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| format!("duration `{text}` is not a number"))?
    };
    let mut total_ns = whole.checked_mul(unit_ns).ok_or_else(overflow)?;
    let mut scale_ns = unit_ns;
    for digit in fraction.chars() {
        let digit =
            digit.to_digit(10).ok_or_else(|| format!("duration `{text}` is not a number"))?;
        if scale_ns % 10 != 0 {
            return Err(format!("duration `{text}` is finer than a nanosecond"));
        }
        scale_ns /= 10;
        total_ns = total_ns.checked_add(u64::from(digit) * scale_ns).ok_or_else(overflow)?;
    }
    Ok(total_ns)
}

/// Formats nanoseconds for people: `1.500000000s`, fixed width after the point so that
/// columns of a trace line up and the text is the same on every machine.
pub fn format_ns(time_ns: u64) -> String {
    format!("{}.{:09}s", time_ns / NS_PER_S, time_ns % NS_PER_S)
}

/// Formats nanoseconds in the largest unit that divides them: `5s`, `250ms`, `7ns`.
pub fn format_duration_short(duration_ns: u64) -> String {
    const UNITS: [(u64, &str); 4] =
        [(NS_PER_S, "s"), (NS_PER_MS, "ms"), (NS_PER_US, "us"), (1, "ns")];
    let (unit_ns, unit) = UNITS
        .into_iter()
        .find(|(unit_ns, _)| duration_ns % unit_ns == 0 && duration_ns >= *unit_ns)
        .unwrap_or((1, "ns"));
    format!("{}{unit}", duration_ns / unit_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        let cases: &[(&str, Result<u64, &str>)] = &[
            ("10ns", Ok(10)),
            ("20us", Ok(20_000)),
            ("250ms", Ok(250_000_000)),
            ("1.5s", Ok(1_500_000_000)),
            (".5ms", Ok(500_000)),
            ("2m", Ok(120 * NS_PER_S)),
            ("1h", Ok(3600 * NS_PER_S)),
            ("0s", Ok(0)),
            ("1.5ns", Err("finer than a nanosecond")),
            ("5", Err("no unit")),
            ("5 parsecs", Err("unknown unit `parsecs`")),
            ("-2s", Err("`-2s` cannot be negative")),
            ("-0s", Err("`-0s` cannot be negative")),
            ("5 ms", Ok(5_000_000)),
            ("s", Err("no number")),
            ("1.2.3s", Err("not a number")),
            ("99999999999h", Err("too long")),
        ];
        for (text, expected) in cases {
            match (parse_duration_ns(text), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, *want, "{text}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{text}: {got}"),
                (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn formats_fixed_width() {
        assert_eq!(format_ns(1_500_000_000), "1.500000000s");
        assert_eq!(format_ns(7), "0.000000007s");
        let short: Vec<String> = [5 * NS_PER_S, 250 * NS_PER_MS, 1_500 * NS_PER_MS, 20_000, 7, 0]
            .into_iter()
            .map(format_duration_short)
            .collect();
        assert_eq!(short, ["5s", "250ms", "1500ms", "20us", "7ns", "0ns"]);
    }
}
