//! Textual pipelines and the registry, used as a library user would.

use mite_ir::Module;
use mite_passes::{
    parse_pipeline, Pass, PassError, PassRegistry, PipelineParseError, RegisterError, Statistics,
};

fn names(registry: &PassRegistry, text: &str) -> Vec<String> {
    registry
        .parse_pipeline(text)
        .unwrap()
        .iter()
        .map(|p| p.name().to_string())
        .collect()
}

fn error(text: &str) -> PipelineParseError {
    match PassRegistry::with_builtin().parse_pipeline(text) {
        Ok(_) => panic!("`{text}` parsed"),
        Err(e) => e,
    }
}

fn syntax_error(text: &str) -> (usize, String) {
    match error(text) {
        PipelineParseError::Syntax { position, message } => (position, message),
        other => panic!("`{text}`: expected a syntax error, found {other}"),
    }
}

#[test]
fn good_pipelines() {
    let r = PassRegistry::with_builtin();
    assert_eq!(
        names(&r, "canonicalize,cse,dce"),
        ["canonicalize", "cse", "dce"]
    );
    assert_eq!(
        names(&r, " constant-fold{max-elements=4096} , dce "),
        ["constant-fold", "dce"]
    );
    assert_eq!(
        names(&r, "canonicalize{ max-sweeps = 3 },dce{},dce"),
        ["canonicalize", "dce", "dce"]
    );
    assert!(names(&r, "").is_empty());
    assert!(names(&r, "   ").is_empty());
}

#[test]
fn elements_record_positions_and_options() {
    let p = parse_pipeline("cse, constant-fold{max-elements=4, b=x.y}").unwrap();
    assert_eq!(p.len(), 2);
    assert_eq!((p[0].name.as_str(), p[0].position), ("cse", 1));
    assert_eq!((p[1].name.as_str(), p[1].position), ("constant-fold", 6));
    let opts: Vec<(&str, &str, usize)> = p[1]
        .options
        .iter()
        .map(|o| (o.key.as_str(), o.value.as_str(), o.position))
        .collect();
    assert_eq!(opts, [("max-elements", "4", 20), ("b", "x.y", 36)]);
}

#[test]
fn unknown_pass_lists_the_known_ones() {
    let e = error("cse,dead-code");
    assert_eq!(
        e,
        PipelineParseError::UnknownPass {
            position: 5,
            name: "dead-code".into(),
            known: "autodiff, canonicalize, constant-fold, cse, dce, dequantize, dge, fuse, schedule, stream-bottlenecks"
                .into()
        }
    );
    assert_eq!(
        e.to_string(),
        "pipeline, at character 5: unknown pass `dead-code` (known passes: autodiff, canonicalize, constant-fold, cse, dce, dequantize, dge, fuse, schedule, stream-bottlenecks)"
    );
}

#[test]
fn syntax_errors_name_the_position() {
    let cases: &[(&str, usize, &str)] = &[
        (",dce", 1, "expected a pass name, found `,`"),
        (
            "dce,",
            5,
            "expected a pass name, found the end of the pipeline",
        ),
        ("dce,,cse", 5, "expected a pass name, found `,`"),
        (
            "dce cse",
            5,
            "expected `,` or the end of the pipeline after pass `dce`, found `c`",
        ),
        (
            "dce;cse",
            4,
            "expected `,` or the end of the pipeline after pass `dce`, found `;`",
        ),
        (
            "constant-fold{max-elements}",
            27,
            "expected `=` after option `max-elements` of pass `constant-fold`, found `}`",
        ),
        (
            "constant-fold{max-elements=}",
            28,
            "expected a value for option `max-elements` of pass `constant-fold`, found `}`",
        ),
        (
            "constant-fold{=3}",
            15,
            "expected an option name of pass `constant-fold`, found `=`",
        ),
        (
            "constant-fold{max-elements=1",
            29,
            "unclosed `{` of pass `constant-fold` (opened at character 14)",
        ),
        (
            "constant-fold{max-elements=1,",
            30,
            "unclosed `{` of pass `constant-fold` (opened at character 14)",
        ),
        (
            "constant-fold{max-elements=1 x=2}",
            30,
            "expected `,` or `}` in the options of pass `constant-fold`, found `x`",
        ),
        (
            "dce{}{}",
            6,
            "expected `,` or the end of the pipeline after pass `dce`, found `{`",
        ),
    ];
    for &(text, position, message) in cases {
        assert_eq!(
            syntax_error(text),
            (position, message.to_string()),
            "pipeline `{text}`"
        );
    }
    assert_eq!(
        error("dce;cse").to_string(),
        "pipeline, at character 4: expected `,` or the end of the pipeline after pass `dce`, found `;`"
    );
}

#[test]
fn positions_count_characters_not_bytes() {
    let (position, _) = syntax_error("cse,\u{e9}");
    assert_eq!(position, 5);
    let (position, _) = syntax_error("constant-fold{k=\u{e9}\u{e9},}");
    assert_eq!(position, 20);
}

#[test]
fn option_errors() {
    let e = error("cse, constant-fold{limit=3}");
    assert_eq!(
        e,
        PipelineParseError::Option {
            position: 20,
            error: PassError::UnknownOption {
                pass: "constant-fold".into(),
                option: "limit".into(),
                known: "max-elements".into()
            }
        }
    );
    assert_eq!(
        e.to_string(),
        "pipeline, at character 20: pass `constant-fold` has no option `limit` (known options: max-elements)"
    );
    assert_eq!(
        error("dce{aggressive=true}").to_string(),
        "pipeline, at character 5: pass `dce` has no option `aggressive` (it takes no options)"
    );
    assert_eq!(
        error("constant-fold{max-elements=-1}").to_string(),
        "pipeline, at character 15: option `max-elements` of pass `constant-fold`: invalid value `-1`: expected an element count"
    );
}

/// A user's pass with an option, registered from outside the crate.
#[derive(Default)]
struct Rename {
    to: Option<String>,
}

impl Pass for Rename {
    fn name(&self) -> &str {
        "rename"
    }
    fn description(&self) -> &str {
        "Renames the module"
    }
    fn set_option(&mut self, key: &str, value: &str) -> Result<(), PassError> {
        match key {
            "to" => {
                self.to = Some(value.to_string());
                Ok(())
            }
            _ => Err(PassError::unknown_option(self.name(), key, &["to"])),
        }
    }
    fn run(&mut self, module: &mut Module, stats: &mut Statistics) -> Result<bool, PassError> {
        let to = self
            .to
            .clone()
            .ok_or_else(|| PassError::failed(self.name(), "option `to` is required"))?;
        stats.increment("renamed");
        let changed = module.name != to;
        module.name = to;
        Ok(changed)
    }
}

#[test]
fn users_register_their_passes() {
    let mut r = PassRegistry::with_builtin();
    r.register_default::<Rename>().unwrap();
    assert_eq!(names(&r, "rename{to=b},dce"), ["rename", "dce"]);
    let mut passes = r.parse_pipeline("rename{to=tiny}").unwrap();
    let mut m = Module::new("m");
    let mut stats = Statistics::new();
    assert!(passes[0].run(&mut m, &mut stats).unwrap());
    assert_eq!(m.name, "tiny");
    assert_eq!(stats.get("renamed"), 1);

    assert_eq!(
        r.register("cse", "again", || Box::new(Rename::default())),
        Err(RegisterError::Duplicate("cse".into()))
    );
    assert_eq!(
        r.register("no spaces", "", || Box::new(Rename::default())),
        Err(RegisterError::InvalidName("no spaces".into()))
    );
    r.register("rename-too", "Renames the module, again", || {
        Box::new(Rename::default())
    })
    .unwrap();
    assert!(r.contains("rename-too"));
}

#[test]
fn listing() {
    let r = PassRegistry::with_builtin();
    let listed: Vec<&str> = r.list().map(|p| p.name).collect();
    assert_eq!(
        listed,
        [
            "autodiff",
            "canonicalize",
            "constant-fold",
            "cse",
            "dce",
            "dequantize",
            "dge",
            "fuse",
            "schedule",
            "stream-bottlenecks"
        ]
    );
    let text = r.to_string();
    assert_eq!(text.lines().count(), 10);
    assert!(
        text.lines().all(|l| l.starts_with("  ")),
        "indented listing:\n{text}"
    );
    // Names are padded to the longest one (`stream-bottlenecks`).
    assert!(
        text.contains("  cse                 Merges identical pure ops"),
        "{text}"
    );
}
