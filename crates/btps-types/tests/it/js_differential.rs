//! Differential test against JavaScript itself: a few thousand random JSON texts, written with
//! every wire spelling the grammar allows (escapes, exponents, extra digits, whitespace,
//! duplicate and array-index keys, lone surrogates), go through `node`'s
//! `JSON.stringify(JSON.parse(text))` and through our parse + serializer; the bytes must be equal.
//!
//! `node` is part of the project's machine image. Set `BTPS_SKIP_NODE=1` to skip this test
//! where it truly is unavailable; without that, a missing `node` fails the test.

use std::io::Write;
use std::process::{Command, Stdio};

use btps_types::json::{JsonError, ParseLimits, parse, to_js_string};

/// A small deterministic generator (xorshift64*), so failures reproduce from the seed.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

fn ws(g: &mut Gen, out: &mut String) {
    if g.chance(15) {
        for _ in 0..=g.below(2) {
            out.push(*g.pick(&[' ', '\t', '\n', '\r']));
        }
    }
}

fn number(g: &mut Gen, out: &mut String) {
    match g.below(9) {
        0 => out.push_str(&(g.next() as i64 >> g.below(60)).to_string()),
        1 => {
            // Any finite double, printed by Rust (shortest round trip, different notation).
            let mut f = f64::from_bits(g.next());
            while !f.is_finite() {
                f = f64::from_bits(g.next());
            }
            out.push_str(&format!("{f:e}"));
        }
        2 => out.push_str(&format!("{}", g.below(10_000) as f64 / 100.0)),
        3 => out.push_str(g.pick::<&str>(&[
            "-0",
            "0",
            "1.0",
            "1.0E0",
            "1e21",
            "1e20",
            "1.5e-5",
            "0.000001",
            "1e-7",
            "5e-7",
            "12345678901234567890",
            "9007199254740993",
            "1.7976931348623157e308",
            "5e-324",
            "0.30000000000000004",
            "4.35",
            "-1.5e-10",
            "123e-2",
            "1E+2",
            "0.1e1",
            "2.5e-324",
            "4.9406564584124654e-324",
            "1e-400",
            "-1e-400",
            "100000000000000000000000",
            "0.0000001",
            "0.000000123456789",
            "1.00000000000000011102230246251565404236316680908203125",
        ])),
        4 => {
            // Long digit strings with exponents.
            let digits = 1 + g.below(25);
            if g.chance(20) {
                out.push('-');
            }
            out.push(char::from(b'1' + g.below(9) as u8));
            for _ in 1..digits {
                out.push(char::from(b'0' + g.below(10) as u8));
            }
            if g.chance(50) {
                out.push('.');
                for _ in 0..=g.below(20) {
                    out.push(char::from(b'0' + g.below(10) as u8));
                }
            }
            if g.chance(50) {
                out.push(*g.pick(&['e', 'E']));
                out.push_str(g.pick::<&str>(&["", "+", "-"]));
                out.push_str(&g.below(330).to_string());
            }
        }
        5 => out.push_str(&(g.below(4_294_967_300)).to_string()),
        6 => out.push_str(&format!(
            "{}",
            (g.next() >> 11) as f64 / (1u64 << 53) as f64
        )),
        7 => out.push_str(&format!("{}", f64::from(g.below(1 << 20) as u32) * 1e-9)),
        _ => out.push_str(&format!("{}e{}", g.below(1000), g.below(40) as i64 - 20)),
    }
}

fn string(g: &mut Gen, out: &mut String) {
    out.push('"');
    for _ in 0..g.below(12) {
        match g.below(14) {
            0 => out.push_str(&format!("\\u{:04x}", g.below(0x20))),
            1 => out.push_str(
                g.pick::<&str>(&["\\b", "\\t", "\\n", "\\f", "\\r", "\\\"", "\\\\", "\\/"]),
            ),
            2 => out.push_str(&format!("\\u{:04X}", 0xD800 + g.below(0x800))), // surrogates
            3 => {
                let c = 0x10000 + g.below(0xF_0000) as u32;
                let c = char::from_u32(c).unwrap_or('x');
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
            4 => out.push_str(&format!("\\u{:04x}", 0x20 + g.below(0xD000))),
            5 => out.push(*g.pick(&['é', '€', '😀', '\u{2028}', '\u{2029}', '\u{7f}', '中', 'ß'])),
            6 => out.push_str(g.pick::<&str>(&["/", "<", ">", "&", "'", "`"])),
            _ => out.push(char::from(b'a' + g.below(26) as u8)),
        }
    }
    out.push('"');
}

fn key(g: &mut Gen, out: &mut String) {
    match g.below(6) {
        0 => out.push_str(&format!("\"{}\"", g.below(20))),
        1 => out.push_str(g.pick::<&str>(&[
            "\"4294967294\"",
            "\"4294967295\"",
            "\"01\"",
            "\"-1\"",
            "\"1.5\"",
            "\"0\"",
            "\"00\"",
            "\"1e3\"",
            "\"99999999999\"",
            "\"\\u0031\"",
        ])),
        2 => string(g, out),
        _ => out.push_str(&format!(
            "\"{}\"",
            g.pick(&["a", "b", "to", "from", "id", "x"])
        )),
    }
}

fn value(g: &mut Gen, out: &mut String, depth: u32) {
    let container = depth < 5 && g.chance(45);
    match (container, g.below(6)) {
        (true, 0..=2) => {
            out.push('{');
            let n = g.below(7);
            for i in 0..n {
                if i > 0 {
                    out.push(',');
                }
                ws(g, out);
                key(g, out);
                ws(g, out);
                out.push(':');
                ws(g, out);
                value(g, out, depth + 1);
                ws(g, out);
            }
            out.push('}');
        }
        (true, _) => {
            out.push('[');
            let n = g.below(6);
            for i in 0..n {
                if i > 0 {
                    out.push(',');
                }
                ws(g, out);
                value(g, out, depth + 1);
                ws(g, out);
            }
            out.push(']');
        }
        (false, 0 | 1) => number(g, out),
        (false, 2 | 3) => string(g, out),
        (false, 4) => out.push_str(g.pick::<&str>(&["true", "false"])),
        (false, _) => out.push_str("null"),
    }
}

#[test]
fn stringify_matches_node_byte_for_byte() {
    if std::env::var_os("BTPS_SKIP_NODE").is_some() {
        eprintln!("BTPS_SKIP_NODE set: differential test against node skipped");
        return;
    }
    const CASES: usize = 4000;
    let mut g = Gen(0x9E37_79B9_7F4A_7C15);
    let mut texts = Vec::with_capacity(CASES);
    for _ in 0..CASES {
        let mut t = String::new();
        value(&mut g, &mut t, 0);
        texts.push(t);
    }
    // One text per line, JSON-encoded so embedded newlines survive; node answers with the
    // stringify result of each, or "!" when JSON.parse refuses it.
    let script = r#"
        const lines = require('fs').readFileSync(0, 'utf8').split('\n').filter(l => l.length);
        const out = lines.map(l => {
            try { return JSON.stringify(JSON.stringify(JSON.parse(JSON.parse(l)))); }
            catch (e) { return '"!"'; }
        });
        process.stdout.write(out.join('\n') + '\n');
    "#;
    let mut child = Command::new("node")
        .arg("-e")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("`node` must be installed for this test (or set BTPS_SKIP_NODE=1)");
    let mut input = String::new();
    for t in &texts {
        input.push_str(&to_js_string(&btps_types::json::Value::from(t.as_str())));
        input.push('\n');
    }
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(output.status.success(), "node failed");
    let answers: Vec<String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            btps_types::json::parse_str(l)
                .unwrap()
                .value
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(answers.len(), texts.len());
    let mut compared = 0;
    let mut refused_both = 0;
    for (text, js) in texts.iter().zip(&answers) {
        let ours = parse(text.as_bytes(), &ParseLimits::DEFAULT);
        match (ours, js.as_str()) {
            (Err(_), "!") => refused_both += 1,
            (Ok(p), js) if js != "!" => {
                assert_eq!(to_js_string(&p.value), js, "input: {text}");
                compared += 1;
            }
            // Numbers that overflow are refused on purpose (PROTOCOL.md §4.1 rule 1);
            // JavaScript would print them as null.
            (Err(JsonError::NumberOutOfRange { .. }), js) if js.contains("null") => {}
            (ours, js) => panic!("disagreement on {text}: ours {ours:?}, node {js}"),
        }
    }
    assert!(
        compared > CASES * 9 / 10,
        "only {compared} compared ({refused_both} refused by both)"
    );
}
