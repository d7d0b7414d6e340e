//! Go's fmt for template values: `print`, `printf`, `println` and the printing of an action's
//! result, with Go's verbs, flags, width and precision, argument indexes, its error markers
//! (`%!d(string=x)`, `%!v(MISSING)`, `%!(EXTRA int=1)`, `%!(NOVERB)`, `%!(BADWIDTH)` ...),
//! and strconv's float formatting (shortest round-trip digits, `%g` switching to an
//! exponent at 1e+21 / 1e-05 for `%v` as Go does).

use super::value::{IntType, Slice, SliceType, Value};

/// `fmt.Sprint`: spaces between operands when neither side is a string.
pub(crate) fn sprint(args: &[Value]) -> String {
    let mut p = Printer::default();
    let mut prev_string = false;
    for (i, a) in args.iter().enumerate() {
        let is_string = matches!(a, Value::Str(_));
        if i > 0 && !is_string && !prev_string {
            p.buf.push(' ');
        }
        p.print_arg(a, 'v');
        prev_string = is_string;
    }
    p.buf
}

/// `fmt.Sprintln`: spaces between every operand, a newline at the end.
pub(crate) fn sprintln(args: &[Value]) -> String {
    let mut p = Printer::default();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            p.buf.push(' ');
        }
        p.print_arg(a, 'v');
    }
    p.buf.push('\n');
    p.buf
}

/// `fmt.Sprintf`.
pub(crate) fn sprintf(format: &str, args: &[Value]) -> String {
    let mut p = Printer::default();
    p.do_printf(format, args);
    p.buf
}

/// Writes `v` as `{{v}}` prints it into `out` (fmt.Fprint of one value).
pub(crate) fn print_value_to(out: &mut String, v: &Value) {
    match v {
        Value::Str(s) => out.push_str(s),
        Value::Int(n, IntType::Int | IntType::Int64) => {
            use std::fmt::Write;
            let _ = write!(out, "{n}");
        }
        _ => {
            let mut p = Printer {
                buf: std::mem::take(out),
                ..Printer::default()
            };
            p.print_arg(v, 'v');
            *out = p.buf;
        }
    }
}

#[derive(Default, Clone, Copy)]
struct Flags {
    plus: bool,
    minus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    plus_v: bool,
    sharp_v: bool,
    wid: Option<usize>,
    prec: Option<usize>,
}

#[derive(Default)]
struct Printer {
    buf: String,
    f: Flags,
    erroring: bool,
    reordered: bool,
    good_arg_num: bool,
}

const MAX_WIDTH: usize = 1_000_000;

/// Decimal digits at `s[i..end]`: (number, found, index after).
fn parse_num(s: &[u8], mut i: usize, end: usize) -> (usize, bool, usize) {
    if i >= end {
        return (0, false, end);
    }
    let mut num = 0usize;
    let mut found = false;
    while i < end && s[i].is_ascii_digit() {
        if num > MAX_WIDTH {
            return (0, false, end);
        }
        num = num * 10 + usize::from(s[i] - b'0');
        found = true;
        i += 1;
    }
    (num, found, i)
}

impl Printer {
    /// Go's `doPrintf`: one pass over the format, flags, width, precision, argument indexes
    /// and verbs, with Go's error strings for each misuse. Kept as one loop as Go keeps it, so
    /// the two can be compared line by line.
    fn do_printf(&mut self, format: &str, args: &[Value]) {
        let s = format.as_bytes();
        let end = s.len();
        let mut arg_num = 0usize;
        let mut after_index;
        self.reordered = false;
        let mut i = 0;
        'verbs: while i < end {
            self.good_arg_num = true;
            let lasti = i;
            while i < end && s[i] != b'%' {
                i += 1;
            }
            if i > lasti {
                self.buf.push_str(&format[lasti..i]);
            }
            if i >= end {
                break;
            }
            i += 1; // the %
            self.f = Flags::default();
            while i < end {
                match s[i] {
                    b'#' => self.f.sharp = true,
                    b'0' => self.f.zero = !self.f.minus,
                    b'+' => self.f.plus = true,
                    b'-' => {
                        self.f.minus = true;
                        self.f.zero = false;
                    }
                    b' ' => self.f.space = true,
                    _ => break,
                }
                i += 1;
            }
            let r = self.arg_number(arg_num, format, i, args.len());
            arg_num = r.0;
            i = r.1;
            after_index = r.2;
            // Width.
            if i < end && s[i] == b'*' {
                i += 1;
                let (w, ok, n) = int_from_arg(args, arg_num);
                arg_num = n;
                if !ok {
                    self.buf.push_str("%!(BADWIDTH)");
                }
                if w < 0 {
                    self.f.wid = Some(w.unsigned_abs() as usize);
                    self.f.minus = true;
                    self.f.zero = false;
                } else if ok {
                    self.f.wid = Some(w as usize);
                }
                after_index = false;
            } else {
                let (w, found, n) = parse_num(s, i, end);
                i = n;
                if found {
                    self.f.wid = Some(w);
                    if after_index {
                        self.good_arg_num = false;
                    }
                }
            }
            // Precision.
            if i < end && s[i] == b'.' {
                i += 1;
                if after_index {
                    self.good_arg_num = false;
                }
                let r = self.arg_number(arg_num, format, i, args.len());
                arg_num = r.0;
                i = r.1;
                after_index = r.2;
                if i < end && s[i] == b'*' {
                    i += 1;
                    let (p, ok, n) = int_from_arg(args, arg_num);
                    arg_num = n;
                    let ok = ok && p >= 0;
                    self.f.prec = if ok { Some(p as usize) } else { None };
                    if !ok {
                        self.buf.push_str("%!(BADPREC)");
                    }
                    after_index = false;
                } else {
                    let (p, found, n) = parse_num(s, i, end);
                    i = n;
                    self.f.prec = Some(if found { p } else { 0 });
                }
            }
            if !after_index {
                let r = self.arg_number(arg_num, format, i, args.len());
                arg_num = r.0;
                i = r.1;
            }
            if i >= end {
                self.buf.push_str("%!(NOVERB)");
                break 'verbs;
            }
            let verb = format[i..].chars().next().unwrap_or('?');
            i += verb.len_utf8();
            match verb {
                '%' => self.buf.push('%'),
                _ if !self.good_arg_num => {
                    self.buf.push_str("%!");
                    self.buf.push(verb);
                    self.buf.push_str("(BADINDEX)");
                }
                _ if arg_num >= args.len() => {
                    self.buf.push_str("%!");
                    self.buf.push(verb);
                    self.buf.push_str("(MISSING)");
                }
                _ => {
                    if verb == 'v' {
                        self.f.sharp_v = self.f.sharp;
                        self.f.sharp = false;
                        self.f.plus_v = self.f.plus;
                        self.f.plus = false;
                    }
                    self.print_arg(&args[arg_num], verb);
                    arg_num += 1;
                }
            }
        }
        if !self.reordered && arg_num < args.len() {
            self.f = Flags::default();
            self.buf.push_str("%!(EXTRA ");
            for (k, a) in args[arg_num..].iter().enumerate() {
                if k > 0 {
                    self.buf.push_str(", ");
                }
                self.type_and_value(a);
            }
            self.buf.push(')');
        }
    }

    /// Go's `argNumber`: an explicit `[n]` index at `i`.
    fn arg_number(
        &mut self,
        arg_num: usize,
        format: &str,
        i: usize,
        num_args: usize,
    ) -> (usize, usize, bool) {
        let s = format.as_bytes();
        if s.len() <= i || s[i] != b'[' {
            return (arg_num, i, false);
        }
        self.reordered = true;
        let rest = &s[i..];
        let (index, wid, ok) = if rest.len() < 3 {
            (0, 1, false)
        } else {
            match rest.iter().skip(1).position(|&c| c == b']') {
                Some(p) => {
                    let close = p + 1;
                    let (n, found, newi) = parse_num(rest, 1, close);
                    if !found || newi != close {
                        (0, close + 1, false)
                    } else {
                        (n as i64 - 1, close + 1, true)
                    }
                }
                None => (0, 1, false),
            }
        };
        if ok && index >= 0 && (index as usize) < num_args {
            return (index as usize, i + wid, true);
        }
        self.good_arg_num = false;
        (arg_num, i + wid, ok)
    }

    fn write_padding(&mut self, n: usize) {
        let c = if self.f.zero { '0' } else { ' ' };
        self.buf.extend(std::iter::repeat_n(c, n));
    }

    fn pad(&mut self, s: &str) {
        match self.f.wid {
            Some(w) if w > 0 => {
                let n = s.chars().count();
                let fill = w.saturating_sub(n);
                if self.f.minus {
                    self.buf.push_str(s);
                    let z = self.f.zero;
                    self.f.zero = false;
                    self.write_padding(fill);
                    self.f.zero = z;
                } else {
                    self.write_padding(fill);
                    self.buf.push_str(s);
                }
            }
            _ => self.buf.push_str(s),
        }
    }

    fn print_arg(&mut self, arg: &Value, verb: char) {
        if arg.is_nothing() {
            match verb {
                'T' | 'v' => self.pad("<nil>"),
                _ => self.bad_verb(verb, arg),
            }
            return;
        }
        match verb {
            'T' => {
                let t = arg.type_name();
                self.fmt_s(t);
                return;
            }
            'p' => {
                self.fmt_pointer(arg, 'p');
                return;
            }
            _ => {}
        }
        match arg {
            Value::Bool(_)
            | Value::Float(_)
            | Value::Complex(..)
            | Value::Str(_)
            | Value::Int(_, IntType::Int | IntType::Int64 | IntType::Uint8 | IntType::Uint16) => {
                self.print_value(arg, verb, 0)
            }
            _ => {
                if !self.handle_methods(arg, verb) {
                    self.print_value(arg, verb, 0);
                }
            }
        }
    }

    /// Stringers (`time.Time`, `time.Month`, ...) print through `String()` for the string verbs.
    fn handle_methods(&mut self, v: &Value, verb: char) -> bool {
        if self.erroring {
            return false;
        }
        if self.f.sharp_v {
            if let Value::Time(t) = v {
                let s = t.go_string();
                self.fmt_s(&s);
                return true;
            }
            return false;
        }
        if !matches!(verb, 'v' | 's' | 'x' | 'X' | 'q') {
            return false;
        }
        let s = match v {
            Value::Time(t) => t.string(),
            Value::Int(n, IntType::Month) => super::time::month_name(*n),
            Value::Int(n, IntType::Weekday) => super::time::weekday_name(*n),
            Value::Int(n, IntType::Duration) => super::time::duration_string(*n),
            _ => return false,
        };
        self.fmt_string(&s, verb);
        true
    }

    /// Go's `printValue`: one arm per kind of value, as long as Go's own, so the two can be
    /// compared arm by arm.
    fn print_value(&mut self, v: &Value, verb: char, depth: usize) {
        if depth > 0 && !v.is_nothing() && self.handle_methods(v, verb) {
            return;
        }
        match v {
            Value::Invalid | Value::Nil => {
                if depth == 0 {
                    self.buf.push_str("<invalid reflect.Value>");
                } else if self.f.sharp_v {
                    self.buf.push_str("interface {}(nil)");
                } else {
                    self.buf.push_str("<nil>");
                }
            }
            Value::Bool(b) => match verb {
                't' | 'v' => self.pad(if *b { "true" } else { "false" }),
                _ => self.bad_verb(verb, v),
            },
            Value::Int(n, t) => {
                if t.unsigned() {
                    self.fmt_integer_verb(*n as u64, false, verb, v);
                } else {
                    self.fmt_integer_verb(*n as u64, true, verb, v);
                }
            }
            Value::Float(x) => self.fmt_float_verb(*x, verb, v),
            Value::Complex(re, im) => match verb {
                'v' | 'b' | 'g' | 'G' | 'x' | 'X' | 'f' | 'F' | 'e' | 'E' => {
                    let old = self.f.plus;
                    self.buf.push('(');
                    self.fmt_float_verb(*re, verb, v);
                    self.f.plus = true;
                    self.fmt_float_verb(*im, verb, v);
                    self.buf.push_str("i)");
                    self.f.plus = old;
                }
                _ => self.bad_verb(verb, v),
            },
            Value::Str(s) => self.fmt_string(s, verb),
            Value::Map(m) => {
                if self.f.sharp_v {
                    self.buf.push_str(v.type_name());
                    if m.is_none() {
                        self.buf.push_str("(nil)");
                        return;
                    }
                    self.buf.push('{');
                } else {
                    self.buf.push_str("map[");
                }
                if let Some(m) = m {
                    for (i, (k, e)) in m.iter().enumerate() {
                        if i > 0 {
                            if self.f.sharp_v {
                                self.buf.push_str(", ");
                            } else {
                                self.buf.push(' ');
                            }
                        }
                        self.print_value(&Value::Str(k.clone()), verb, depth + 1);
                        self.buf.push(':');
                        self.print_value(e, verb, depth + 1);
                    }
                }
                self.buf.push(if self.f.sharp_v { '}' } else { ']' });
            }
            Value::Kv(kv) => {
                let fields = [
                    ("Key", Value::Str(kv.key.clone())),
                    ("Value", Value::Str(kv.value.clone())),
                ];
                self.print_struct(v.type_name(), &fields, verb, depth);
            }
            Value::Srv(srv) => {
                if depth == 0 {
                    self.buf.push('&');
                    let fields = [
                        ("Target", Value::Str(srv.target.clone())),
                        ("Port", Value::Int(srv.port.into(), IntType::Uint16)),
                        ("Priority", Value::Int(srv.priority.into(), IntType::Uint16)),
                        ("Weight", Value::Int(srv.weight.into(), IntType::Uint16)),
                    ];
                    self.print_struct("net.SRV", &fields, verb, depth + 1);
                } else {
                    self.fmt_pointer(v, verb);
                }
            }
            Value::Time(t) => {
                // Reached only for verbs a Stringer does not take: Go prints the struct's
                // unexported fields; reconfd prints the fields it keeps.
                let fields = [
                    ("wall", Value::Int(t.nanos.into(), IntType::Int64)),
                    ("ext", Value::Int(t.secs, IntType::Int64)),
                ];
                self.print_struct("time.Time", &fields, verb, depth);
            }
            Value::Slice(s) => self.print_slice(s, verb, depth),
        }
    }

    fn print_struct(
        &mut self,
        type_name: &str,
        fields: &[(&str, Value)],
        verb: char,
        depth: usize,
    ) {
        if self.f.sharp_v {
            self.buf.push_str(type_name);
        }
        self.buf.push('{');
        for (i, (name, value)) in fields.iter().enumerate() {
            if i > 0 {
                if self.f.sharp_v {
                    self.buf.push_str(", ");
                } else {
                    self.buf.push(' ');
                }
            }
            if self.f.plus_v || self.f.sharp_v {
                self.buf.push_str(name);
                self.buf.push(':');
            }
            self.print_value(value, verb, depth + 1);
        }
        self.buf.push('}');
    }

    fn print_slice(&mut self, s: &Slice, verb: char, depth: usize) {
        if self.f.sharp_v {
            self.buf.push_str(s.ty.name());
            if s.is_nil() {
                self.buf.push_str("(nil)");
                return;
            }
            self.buf.push('{');
            for (i, e) in s.items().iter().enumerate() {
                if i > 0 {
                    self.buf.push_str(", ");
                }
                self.print_elem(s.ty, e, verb, depth);
            }
            self.buf.push('}');
            return;
        }
        self.buf.push('[');
        for (i, e) in s.items().iter().enumerate() {
            if i > 0 {
                self.buf.push(' ');
            }
            self.print_elem(s.ty, e, verb, depth);
        }
        self.buf.push(']');
    }

    fn print_elem(&mut self, ty: SliceType, e: &Value, verb: char, depth: usize) {
        if ty == SliceType::Iface {
            // An interface element: its dynamic value one level deeper.
            if e.is_nothing() {
                self.buf.push_str(if self.f.sharp_v {
                    "interface {}(nil)"
                } else {
                    "<nil>"
                });
                return;
            }
            self.print_value(e, verb, depth + 2);
        } else {
            self.print_value(e, verb, depth + 1);
        }
    }

    /// `type=value` as Go's fmt writes an argument it could not use, `<nil>` for nil.
    fn type_and_value(&mut self, v: &Value) {
        if v.is_nothing() {
            self.buf.push_str("<nil>");
        } else {
            self.buf.push_str(v.type_name());
            self.buf.push('=');
            self.print_arg(v, 'v');
        }
    }

    fn bad_verb(&mut self, verb: char, v: &Value) {
        self.erroring = true;
        self.buf.push_str("%!");
        self.buf.push(verb);
        self.buf.push('(');
        self.type_and_value(v);
        self.buf.push(')');
        self.erroring = false;
    }

    fn fmt_pointer(&mut self, v: &Value, verb: char) {
        // Addresses are not reproducible between runs; reconfd prints one per kind of value.
        let u: u64 = match v {
            Value::Srv(_) | Value::Map(Some(_)) | Value::Slice(_) => 0xc000010000,
            _ => {
                self.bad_verb(verb, v);
                return;
            }
        };
        match verb {
            'v' => {
                if self.f.sharp_v {
                    self.buf.push('(');
                    self.buf.push_str(v.type_name());
                    self.buf.push_str(")(");
                    self.fmt_0x64(u, true);
                    self.buf.push(')');
                } else {
                    self.fmt_0x64(u, !self.f.sharp);
                }
            }
            'p' => self.fmt_0x64(u, !self.f.sharp),
            'b' | 'o' | 'd' | 'x' | 'X' => self.fmt_integer_verb(u, false, verb, v),
            _ => self.bad_verb(verb, v),
        }
    }

    fn fmt_0x64(&mut self, u: u64, leading: bool) {
        let sharp = self.f.sharp;
        self.f.sharp = leading;
        self.fmt_integer(u, 16, false, 'v', false);
        self.f.sharp = sharp;
    }

    fn fmt_integer_verb(&mut self, u: u64, signed: bool, verb: char, v: &Value) {
        match verb {
            'v' => {
                if self.f.sharp_v && !signed {
                    self.fmt_0x64(u, true);
                } else {
                    self.fmt_integer(u, 10, signed, verb, false);
                }
            }
            'd' => self.fmt_integer(u, 10, signed, verb, false),
            'b' => self.fmt_integer(u, 2, signed, verb, false),
            'o' | 'O' => self.fmt_integer(u, 8, signed, verb, false),
            'x' => self.fmt_integer(u, 16, signed, verb, false),
            'X' => self.fmt_integer(u, 16, signed, verb, true),
            'c' => {
                let c = char_of(u);
                self.pad(c.encode_utf8(&mut [0; 4]));
            }
            'q' => {
                let c = char_of(u);
                let q = quote_rune(c, self.f.plus);
                self.pad(&q);
            }
            'U' => self.fmt_unicode(u),
            _ => self.bad_verb(verb, v),
        }
    }

    fn fmt_integer(&mut self, u: u64, base: u64, signed: bool, verb: char, upper: bool) {
        let negative = signed && (u as i64) < 0;
        let mut u = if negative {
            (u as i64).unsigned_abs()
        } else {
            u
        };
        let mut prec = 0usize;
        if let Some(p) = self.f.prec {
            prec = p;
            if p == 0 && u == 0 {
                let z = self.f.zero;
                self.f.zero = false;
                let w = self.f.wid.unwrap_or(0);
                self.write_padding(w);
                self.f.zero = z;
                return;
            }
        } else if self.f.zero && self.f.wid.is_some() {
            prec = self.f.wid.unwrap_or(0);
            if negative || self.f.plus || self.f.space {
                prec = prec.saturating_sub(1);
            }
        }
        let digits: &[u8] = if upper {
            b"0123456789ABCDEFX"
        } else {
            b"0123456789abcdefx"
        };
        let mut out: Vec<u8> = Vec::with_capacity(24);
        loop {
            out.push(digits[(u % base) as usize]);
            u /= base;
            if u == 0 {
                break;
            }
        }
        while out.len() < prec {
            out.push(b'0');
        }
        if self.f.sharp {
            match base {
                2 => out.extend_from_slice(b"b0"),
                8 if out.last() != Some(&b'0') => out.push(b'0'),
                16 => {
                    out.push(digits[16]);
                    out.push(b'0');
                }
                _ => {}
            }
        }
        if verb == 'O' {
            out.extend_from_slice(b"o0");
        }
        if negative {
            out.push(b'-');
        } else if self.f.plus {
            out.push(b'+');
        } else if self.f.space {
            out.push(b' ');
        }
        out.reverse();
        let s = String::from_utf8(out).unwrap_or_default();
        let z = self.f.zero;
        self.f.zero = false;
        self.pad(&s);
        self.f.zero = z;
    }

    fn fmt_unicode(&mut self, u: u64) {
        let prec = match self.f.prec {
            Some(p) if p > 4 => p,
            _ => 4,
        };
        let mut s = format!("U+{u:0prec$X}");
        if self.f.sharp {
            if let Some(c) = u32::try_from(u).ok().and_then(char::from_u32) {
                if is_print(c) {
                    s.push_str(" '");
                    s.push(c);
                    s.push('\'');
                }
            }
        }
        let z = self.f.zero;
        self.f.zero = false;
        self.pad(&s);
        self.f.zero = z;
    }

    fn truncate<'a>(&self, s: &'a str) -> &'a str {
        match self.f.prec {
            Some(p) => match s.char_indices().nth(p) {
                Some((i, _)) => &s[..i],
                None => s,
            },
            None => s,
        }
    }

    fn fmt_s(&mut self, s: &str) {
        let s = self.truncate(s).to_owned();
        self.pad(&s);
    }

    fn fmt_string(&mut self, s: &str, verb: char) {
        match verb {
            'v' => {
                if self.f.sharp_v {
                    self.fmt_q(s);
                } else {
                    self.fmt_s(s);
                }
            }
            's' => self.fmt_s(s),
            'x' => self.fmt_sx(s, false),
            'X' => self.fmt_sx(s, true),
            'q' => self.fmt_q(s),
            _ => self.bad_verb(verb, &Value::str(s)),
        }
    }

    fn fmt_sx(&mut self, s: &str, upper: bool) {
        let digits: &[u8] = if upper {
            b"0123456789ABCDEFX"
        } else {
            b"0123456789abcdefx"
        };
        let b = s.as_bytes();
        let mut length = b.len();
        if let Some(p) = self.f.prec {
            length = length.min(p);
        }
        let mut width = 2 * length;
        if width > 0 {
            if self.f.space {
                if self.f.sharp {
                    width *= 2;
                }
                width += length - 1;
            } else if self.f.sharp {
                width += 2;
            }
        } else {
            if let Some(w) = self.f.wid {
                self.write_padding(w);
            }
            return;
        }
        let wid = self.f.wid.unwrap_or(0);
        if self.f.wid.is_some() && wid > width && !self.f.minus {
            self.write_padding(wid - width);
        }
        let mut out = String::with_capacity(width);
        if self.f.sharp && !self.f.space {
            out.push('0');
            out.push(digits[16] as char);
        }
        for (i, &c) in b[..length].iter().enumerate() {
            if self.f.space && i > 0 {
                out.push(' ');
            }
            if self.f.space && self.f.sharp {
                out.push('0');
                out.push(digits[16] as char);
            }
            out.push(digits[usize::from(c >> 4)] as char);
            out.push(digits[usize::from(c & 15)] as char);
        }
        self.buf.push_str(&out);
        if self.f.wid.is_some() && wid > width && self.f.minus {
            self.write_padding(wid - width);
        }
    }

    fn fmt_q(&mut self, s: &str) {
        let s = self.truncate(s).to_owned();
        if self.f.sharp && can_backquote(&s) {
            self.pad(&format!("`{s}`"));
            return;
        }
        let q = quote(&s, self.f.plus);
        self.pad(&q);
    }

    fn fmt_float_verb(&mut self, x: f64, verb: char, v: &Value) {
        match verb {
            'v' => self.fmt_float(x, 'g', -1),
            'b' | 'g' | 'G' | 'x' | 'X' => self.fmt_float(x, verb, -1),
            'f' | 'e' | 'E' => self.fmt_float(x, verb, 6),
            'F' => self.fmt_float(x, 'f', 6),
            _ => self.bad_verb(verb, v),
        }
    }

    /// Go's `fmtFloat`: shortest or fixed precision, `%v`'s exponent thresholds, flags and
    /// padding, in Go's order (its length is Go's).
    fn fmt_float(&mut self, v: f64, verb: char, prec: i32) {
        let prec = match self.f.prec {
            Some(p) => i32::try_from(p).unwrap_or(i32::MAX),
            None => prec,
        };
        let formatted = format_float(v, verb, prec);
        let mut num: Vec<u8> = Vec::with_capacity(formatted.len() + 1);
        if formatted.starts_with('-') || formatted.starts_with('+') {
            num.extend_from_slice(formatted.as_bytes());
        } else {
            num.push(b'+');
            num.extend_from_slice(formatted.as_bytes());
        }
        if self.f.space && num[0] == b'+' && !self.f.plus {
            num[0] = b' ';
        }
        if num.get(1).is_some_and(|c| *c == b'I' || *c == b'N') {
            let z = self.f.zero;
            self.f.zero = false;
            if num[1] == b'N' && !self.f.space && !self.f.plus {
                num.remove(0);
            }
            let s = String::from_utf8(num).unwrap_or_default();
            self.pad(&s);
            self.f.zero = z;
            return;
        }
        if self.f.sharp && verb != 'b' {
            let mut digits: i64 = match verb {
                'v' | 'g' | 'G' | 'x' => {
                    if prec == -1 {
                        6
                    } else {
                        i64::from(prec)
                    }
                }
                _ => 0,
            };
            let mut tail: Vec<u8> = Vec::new();
            let mut has_point = false;
            let mut saw_nonzero = false;
            let mut i = 1;
            while i < num.len() {
                match num[i] {
                    b'.' => has_point = true,
                    b'p' | b'P' => {
                        tail.extend_from_slice(&num[i..]);
                        num.truncate(i);
                        break;
                    }
                    b'e' | b'E' if verb != 'x' && verb != 'X' => {
                        tail.extend_from_slice(&num[i..]);
                        num.truncate(i);
                        break;
                    }
                    c => {
                        if c != b'0' {
                            saw_nonzero = true;
                        }
                        if saw_nonzero {
                            digits -= 1;
                        }
                    }
                }
                i += 1;
            }
            if !has_point {
                if num.len() == 2 && num[1] == b'0' {
                    digits -= 1;
                }
                num.push(b'.');
            }
            while digits > 0 {
                num.push(b'0');
                digits -= 1;
            }
            num.extend_from_slice(&tail);
        }
        let s = String::from_utf8(num).unwrap_or_default();
        if self.f.plus || !s.starts_with('+') {
            let wid = self.f.wid.unwrap_or(0);
            if self.f.zero && self.f.wid.is_some() && wid > s.len() {
                self.buf.push_str(&s[..1]);
                self.write_padding(wid - s.len());
                self.buf.push_str(&s[1..]);
                return;
            }
            self.pad(&s);
            return;
        }
        self.pad(&s[1..]);
    }
}

/// Go's `intFromArg` for `*` widths: (value, ok, next argument).
fn int_from_arg(args: &[Value], arg_num: usize) -> (i64, bool, usize) {
    let Some(a) = args.get(arg_num) else {
        return (0, false, arg_num);
    };
    let (n, ok) = match a {
        Value::Int(n, _) => (*n, true),
        _ => (0, false),
    };
    if ok && n.unsigned_abs() > MAX_WIDTH as u64 {
        return (0, false, arg_num + 1);
    }
    (n, ok, arg_num + 1)
}

fn char_of(u: u64) -> char {
    u32::try_from(u)
        .ok()
        .and_then(char::from_u32)
        .unwrap_or('\u{FFFD}')
}

// ---- strconv ----

/// Go's `unicode.IsPrint`, closely: letters, marks, numbers, punctuation, symbols and the
/// ASCII space are printable; controls, format characters, other spaces, private use and
/// unassigned code points are not (Rust has no general-category table; this covers the
/// characters a configuration file plausibly holds).
pub(crate) fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let u = c as u32;
    !matches!(u,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x180E | 0x200B..=0x200F | 0x2028..=0x202E
        | 0x2060..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB | 0xE000..=0xF8FF | 0xF0000..=0x10FFFF
        | 0xFFFE | 0xFFFF | 0xFDD0..=0xFDEF | 0x110BD | 0x1D173..=0x1D17A | 0xE0001..=0xE007F)
}

fn escape_into(out: &mut String, c: char, quote: char, ascii_only: bool) {
    if c == quote || c == '\\' {
        out.push('\\');
        out.push(c);
        return;
    }
    if ascii_only {
        if (c as u32) < 0x80 && is_print(c) {
            out.push(c);
            return;
        }
    } else if is_print(c) {
        out.push(c);
        return;
    }
    match c {
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        _ => {
            let u = c as u32;
            if u < 0x20 || u == 0x7f {
                out.push_str(&format!("\\x{u:02x}"));
            } else if u < 0x10000 {
                out.push_str(&format!("\\u{u:04x}"));
            } else {
                out.push_str(&format!("\\U{u:08x}"));
            }
        }
    }
}

/// `strconv.Quote` (`ascii_only`: `strconv.QuoteToASCII`).
pub(crate) fn quote(s: &str, ascii_only: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        escape_into(&mut out, c, '"', ascii_only);
    }
    out.push('"');
    out
}

/// `strconv.QuoteRune` (`ascii_only`: `QuoteRuneToASCII`).
pub(crate) fn quote_rune(c: char, ascii_only: bool) -> String {
    let mut out = String::from("'");
    escape_into(&mut out, c, '\'', ascii_only);
    out.push('\'');
    out
}

/// `strconv.CanBackquote`.
fn can_backquote(s: &str) -> bool {
    s.chars()
        .all(|c| c != '\u{FEFF}' && c != '`' && c != '\u{7f}' && (c >= ' ' || c == '\t'))
}

/// `%#U` of a character: `U+0023 '#'`.
pub(crate) fn unicode_sharp(c: char) -> String {
    let mut s = format!("U+{:04X}", c as u32);
    if is_print(c) {
        s.push_str(&format!(" '{c}'"));
    }
    s
}

// ---- strconv.FormatFloat(v, fmt, prec, 64) ----

/// Decimal digits of |v| (no leading or trailing zeros; none for 0) and the position of the
/// decimal point: v = 0.d1d2d3... × 10^dp.
struct Decimal {
    d: Vec<u8>,
    dp: i32,
}

impl Decimal {
    fn from_exp_form(s: &str) -> Self {
        // Rust's `{:e}` form: "d.ddde±x".
        let (mant, exp) = s.split_once('e').unwrap_or((s, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let mut d: Vec<u8> = mant.bytes().filter(u8::is_ascii_digit).collect();
        while d.last() == Some(&b'0') {
            d.pop();
        }
        if d.is_empty() {
            return Decimal { d, dp: 0 };
        }
        Decimal { d, dp: exp + 1 }
    }

    fn shortest(v: f64) -> Self {
        Self::from_exp_form(&format!("{v:e}"))
    }

    /// `n` significant digits, correctly rounded.
    fn significant(v: f64, n: usize) -> Self {
        // Go takes precisions up to 1e6; Rust's formatter panics past 65535. An f64's exact
        // decimal expansion has at most 767 significant digits, so digits past EXACT_DIGITS
        // are zeros (which Decimal drops anyway) and asking for fewer changes nothing.
        let n = n.min(EXACT_DIGITS);
        Self::from_exp_form(&format!("{:.*e}", n.saturating_sub(1), v))
    }

    /// Rounded to `prec` digits after the decimal point.
    fn fixed(v: f64, prec: usize) -> Self {
        // At most 1074 fraction digits are non-zero (2^-1074 is the smallest f64).
        let prec = prec.min(EXACT_DIGITS);
        let s = format!("{v:.prec$}");
        let (int, frac) = s.split_once('.').unwrap_or((&s, ""));
        let mut d: Vec<u8> = int.bytes().chain(frac.bytes()).collect();
        let mut dp = int.len() as i32;
        while d.first() == Some(&b'0') {
            d.remove(0);
            dp -= 1;
        }
        while d.last() == Some(&b'0') {
            d.pop();
        }
        if d.is_empty() {
            dp = 0;
        }
        Decimal { d, dp }
    }
}

/// More digits than any f64's exact decimal expansion has, significant (767) or after the
/// point (1074), and within what Rust's formatter accepts as a precision (65535).
const EXACT_DIGITS: usize = 1100;

/// `strconv.FormatFloat(v, verb, prec, 64)`.
pub(crate) fn format_float(v: f64, verb: char, prec: i32) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let neg = v.is_sign_negative();
    let a = v.abs();
    match verb {
        'b' => return format_b(v),
        'x' | 'X' => return format_x(v, prec, verb),
        _ => {}
    }
    let shortest = prec < 0;
    let mut prec = prec;
    let digs = if shortest {
        let d = Decimal::shortest(a);
        prec = match verb {
            'e' | 'E' => (d.d.len() as i32 - 1).max(0),
            'f' => (d.d.len() as i32 - d.dp).max(0),
            _ => d.d.len() as i32,
        };
        d
    } else {
        match verb {
            'e' | 'E' => Decimal::significant(a, prec as usize + 1),
            'g' | 'G' => {
                if prec == 0 {
                    prec = 1;
                }
                Decimal::significant(a, prec as usize)
            }
            _ => Decimal::fixed(a, prec as usize),
        }
    };
    match verb {
        'e' | 'E' => fmt_e(neg, &digs, prec, verb),
        'f' => fmt_f(neg, &digs, prec),
        _ => {
            // 'g', 'G'
            let mut eprec = prec;
            let nd = digs.d.len() as i32;
            if eprec > nd && nd >= digs.dp {
                eprec = nd;
            }
            if shortest {
                eprec = 6;
            }
            let exp = digs.dp - 1;
            if exp < -4 || exp >= eprec {
                if prec > nd {
                    prec = nd;
                }
                let e = if verb == 'G' { 'E' } else { 'e' };
                return fmt_e(neg, &digs, prec - 1, e);
            }
            if prec > digs.dp {
                prec = nd;
            }
            fmt_f(neg, &digs, (prec - digs.dp).max(0))
        }
    }
}

fn fmt_e(neg: bool, d: &Decimal, prec: i32, e: char) -> String {
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    s.push(d.d.first().map_or('0', |c| *c as char));
    if prec > 0 {
        s.push('.');
        for i in 1..=prec as usize {
            s.push(d.d.get(i).map_or('0', |c| *c as char));
        }
    }
    s.push(e);
    let mut exp = if d.d.is_empty() { 0 } else { d.dp - 1 };
    if exp < 0 {
        s.push('-');
        exp = -exp;
    } else {
        s.push('+');
    }
    if exp < 10 {
        s.push('0');
    }
    s.push_str(&exp.to_string());
    s
}

fn fmt_f(neg: bool, d: &Decimal, prec: i32) -> String {
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    if d.dp > 0 {
        for i in 0..d.dp as usize {
            s.push(d.d.get(i).map_or('0', |c| *c as char));
        }
    } else {
        s.push('0');
    }
    if prec > 0 {
        s.push('.');
        for i in 0..prec {
            let j = d.dp + i;
            let c = if j >= 0 {
                d.d.get(j as usize).map_or('0', |c| *c as char)
            } else {
                '0'
            };
            s.push(c);
        }
    }
    s
}

/// Mantissa (with the implicit bit) and binary exponent: v = mant × 2^(exp − 52).
fn float_parts(v: f64) -> (bool, u64, i32) {
    let bits = v.to_bits();
    let neg = bits >> 63 != 0;
    let mut exp = ((bits >> 52) & 0x7ff) as i32;
    let mut mant = bits & ((1 << 52) - 1);
    if exp == 0 {
        exp += 1;
    } else {
        mant |= 1 << 52;
    }
    (neg, mant, exp - 1023)
}

fn format_b(v: f64) -> String {
    let (neg, mant, exp) = float_parts(v);
    let exp = exp - 52;
    format!(
        "{}{mant}p{}{}",
        if neg { "-" } else { "" },
        if exp >= 0 { "+" } else { "-" },
        exp.abs()
    )
}

fn format_x(v: f64, prec: i32, verb: char) -> String {
    let (neg, mut mant, mut exp) = float_parts(v);
    if mant == 0 {
        exp = 0;
    }
    mant <<= 60 - 52;
    while mant != 0 && mant & (1 << 60) == 0 {
        mant <<= 1;
        exp -= 1;
    }
    if (0..15).contains(&prec) {
        let shift = (prec * 4) as u32;
        let extra = (mant << shift) & ((1 << 60) - 1);
        mant >>= 60 - shift;
        if extra | (mant & 1) > 1 << 59 {
            mant += 1;
        }
        mant <<= 60 - shift;
        if mant & (1 << 61) != 0 {
            mant >>= 1;
            exp += 1;
        }
    }
    let hex: &[u8] = if verb == 'X' {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    s.push('0');
    s.push(verb);
    s.push((b'0' + ((mant >> 60) & 1) as u8) as char);
    mant <<= 4;
    if prec < 0 && mant != 0 {
        s.push('.');
        while mant != 0 {
            s.push(hex[((mant >> 60) & 15) as usize] as char);
            mant <<= 4;
        }
    } else if prec > 0 {
        s.push('.');
        for _ in 0..prec {
            s.push(hex[((mant >> 60) & 15) as usize] as char);
            mant <<= 4;
        }
    }
    s.push(if verb == 'X' { 'P' } else { 'p' });
    if exp < 0 {
        s.push('-');
        exp = -exp;
    } else {
        s.push('+');
    }
    if exp < 10 {
        s.push('0');
    }
    s.push_str(&exp.to_string());
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: f64, verb: char, prec: i32) -> String {
        format_float(v, verb, prec)
    }

    /// Found by cargo fuzz: a precision past 65535 made Rust's formatter panic; Go takes it.
    #[test]
    fn precisions_past_rusts_formatter_limit_pad_with_zeros() {
        let e = f(1.5, 'e', 70_000);
        assert_eq!(e.len(), 70_006);
        assert!(e.starts_with("1.5000") && e.ends_with("0e+00"));
        assert_eq!(f(0.1, 'f', 100_000).len(), 100_002);
        assert_eq!(
            f(0.1, 'g', 70_000),
            "0.1000000000000000055511151231257827021181583404541015625"
        );
    }

    #[test]
    fn floats_as_strconv_formats_them() {
        assert_eq!(f(1e6, 'g', -1), "1e+06");
        assert_eq!(f(123456.0, 'g', -1), "123456");
        assert_eq!(f(1e-5, 'g', -1), "1e-05");
        assert_eq!(f(0.0001, 'g', -1), "0.0001");
        assert_eq!(f(0.0, 'g', -1), "0");
        assert_eq!(f(-0.0, 'g', -1), "-0");
        assert_eq!(f(1.5, 'x', -1), "0x1.8p+00");
        assert_eq!(f(1.0, 'b', -1), "4503599627370496p-52");
        assert_eq!(f(1.23456, 'e', 3), "1.235e+00");
        assert_eq!(f(2.5, 'f', 0), "2");
        assert_eq!(f(1.0, 'g', 3), "1");
        assert_eq!(f(1234567.0, 'g', 3), "1.23e+06");
        assert_eq!(f(0.0, 'e', 2), "0.00e+00");
    }

    #[test]
    fn printf_markers() {
        let s = |x: &str| Value::str(x);
        assert_eq!(sprintf("%d", &[s("x")]), "%!d(string=x)");
        assert_eq!(sprintf("%d %d", &[Value::int(1)]), "1 %!d(MISSING)");
        assert_eq!(
            sprintf("%d", &[Value::int(1), s("a")]),
            "1%!(EXTRA string=a)"
        );
        assert_eq!(sprintf("trailing %", &[]), "trailing %!(NOVERB)");
        assert_eq!(
            sprintf(
                "%05.1f|%-5d|%+d|%x|%X|%o|%#o|%b",
                &[
                    Value::Float(1.23456),
                    Value::int(7),
                    Value::int(3),
                    Value::int(255),
                    Value::int(255),
                    Value::int(8),
                    Value::int(8),
                    Value::int(5)
                ]
            ),
            "001.2|7    |+3|ff|FF|10|010|101"
        );
        assert_eq!(
            sprintf("%q %v %#v", &[s("a\"b"), Value::Nil, s("x")]),
            "\"a\\\"b\" <nil> \"x\""
        );
        assert_eq!(
            sprintf("%[2]d %[1]d", &[Value::int(1), Value::int(2)]),
            "2 1"
        );
        assert_eq!(
            sprintf(
                "%6.2f|%-8q|%U|%#U|%c",
                &[
                    Value::Float(1.0),
                    s("a"),
                    Value::int(0x1F600),
                    Value::int(65),
                    Value::int(66)
                ]
            ),
            "  1.00|\"a\"     |U+1F600|U+0041 'A'|B"
        );
    }
}
