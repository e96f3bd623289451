//! The CI recipes under examples/ci/ and the Dockerfile work as copied, as far as this machine
//! can tell without a CI system or a cluster: each recipe is valid YAML; every `flotilla` command
//! in them parses with the real command line, and its `--wave`, `--select` and `--shard` are
//! accepted by the plan it runs (every wave exists; no shard crosses waves); every variable the
//! plan requires is set where the command runs; the CronJob can read its credentials as the user
//! it runs as, keeps its journal on a persistent volume, and runs the image the Dockerfile
//! builds, as a non-root user.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clap::Parser;
use flotilla::cli::{Cli, Command};
use flotilla::plan::resolved::ExpandedPlan;
use serde_json::Value;

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every YAML document of a recipe.
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_multiple(&text)
        .unwrap_or_else(|e| panic!("{}: not valid YAML: {e}", path.display()))
}

fn recipe(name: &str) -> PathBuf {
    repository().join("examples/ci").join(name)
}

/// Every string in a YAML document, depth first.
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// Splits a shell line into words, honouring single and double quotes.
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quote = None;
    let mut in_word = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => current.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            (None, c) => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(current);
    }
    words
}

/// Placeholders a CI system fills in, replaced by plausible values; `$PLAN` by what the
/// recipe sets it to where the command runs.
fn substitute(word: &str, env: &Env) -> String {
    let plan = env
        .get("PLAN")
        .and_then(|v| v.clone())
        .unwrap_or_else(|| "$PLAN".to_owned());
    word.replace("${{ matrix.k }}", "1")
        .replace("$PLAN", &plan)
        .replace("$SHARD", "1")
}

/// The `flotilla ...` commands in a script: one per line or per pipeline/list segment.
fn commands(script: &str, env: &Env) -> Vec<Vec<String>> {
    let joined = script.replace("\\\n", " ");
    let mut found = Vec::new();
    for line in joined.lines() {
        for segment in line.split(&['|', ';'][..]).flat_map(|s| s.split("&&")) {
            let segment = segment.split(">>").next().unwrap_or(segment);
            let segment = segment.split(" > ").next().unwrap_or(segment);
            let words = words(&substitute(segment, env));
            // A lone `flotilla` is a name (a cache key), not a command; `cargo install ...
            // flotilla` is not one either.
            if words.len() > 1 && words[0] == "flotilla" {
                found.push(words);
            }
        }
    }
    found
}

/// The variables set where a command runs, with their literal value when the recipe gives one
/// (`None`: from a secret, a CI variable, a ConfigMap).
type Env = BTreeMap<String, Option<String>>;

/// A `flotilla` command of a recipe, with the variables set where it runs.
struct Found {
    /// Where it is, for messages: `file: job`.
    place: String,
    words: Vec<String>,
    env: Env,
}

fn env_of(mapping: &Value) -> Env {
    mapping
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, value)| {
            let literal = value
                .as_str()
                .filter(|v| !v.contains('$'))
                .map(str::to_owned);
            (name.clone(), literal)
        })
        .collect()
}

fn with(mut base: Env, more: Env) -> Env {
    base.extend(more);
    base
}

/// GitHub Actions: `env` of the workflow, the job and the step, around each `run`.
fn github_commands(path: &Path, doc: &Value) -> Vec<Found> {
    let workflow_env = env_of(&doc["env"]);
    let mut found = Vec::new();
    for (job_name, job) in doc["jobs"].as_object().expect("jobs") {
        let job_env = with(workflow_env.clone(), env_of(&job["env"]));
        for step in job["steps"].as_array().into_iter().flatten() {
            let env = with(job_env.clone(), env_of(&step["env"]));
            let Some(run) = step["run"].as_str() else {
                continue;
            };
            for words in commands(run, &env) {
                found.push(Found {
                    place: format!("{}: job {job_name}", path.display()),
                    words,
                    env: env.clone(),
                });
            }
        }
    }
    found
}

/// GitLab CI: global `variables`, those of the templates a job `extends`, and the job's own,
/// around its `script`.
fn gitlab_commands(path: &Path, doc: &Value) -> Vec<Found> {
    let global = env_of(&doc["variables"]);
    let mut found = Vec::new();
    for (job_name, job) in doc.as_object().expect("a mapping") {
        if job_name.starts_with('.') || job.get("script").is_none() {
            continue;
        }
        let mut env = global.clone();
        let extends: Vec<&str> = match &job["extends"] {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        for template in extends {
            env = with(env, env_of(&doc[template]["variables"]));
        }
        env = with(env, env_of(&job["variables"]));
        let mut scripts = Vec::new();
        strings(&job["script"], &mut scripts);
        for script in scripts {
            for words in commands(&script, &env) {
                found.push(Found {
                    place: format!("{}: job {job_name}", path.display()),
                    words,
                    env: env.clone(),
                });
            }
        }
    }
    found
}

/// The CronJob's pod template.
fn pod_spec(docs: &[Value]) -> &Value {
    docs.iter()
        .find(|d| d["kind"] == "CronJob")
        .expect("a CronJob")
        .pointer("/spec/jobTemplate/spec/template/spec")
        .expect("a pod template")
}

/// Kubernetes: the container's `args` after the image's entrypoint, with the container's `env`.
fn cronjob_commands(path: &Path, docs: &[Value]) -> Vec<Found> {
    let mut found = Vec::new();
    for container in pod_spec(docs)["containers"].as_array().expect("containers") {
        let env: Env = container["env"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                let name = e["name"].as_str().expect("an env name").to_owned();
                (name, e["value"].as_str().map(str::to_owned))
            })
            .collect();
        let words = std::iter::once("flotilla".to_owned())
            .chain(
                container["args"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a.as_str().map(str::to_owned)),
            )
            .collect();
        found.push(Found {
            place: format!("{}: container {}", path.display(), container["name"]),
            words,
            env,
        });
    }
    found
}

/// Every `flotilla` command of a recipe with the variables set where it runs, checked to be
/// every command a plain scan of the file finds.
fn recipe_commands(path: &Path) -> Vec<Found> {
    let docs = documents(path);
    let found = if docs.iter().any(|d| d.get("jobs").is_some()) {
        github_commands(path, &docs[0])
    } else if docs.iter().any(|d| d.get("stages").is_some()) {
        gitlab_commands(path, &docs[0])
    } else {
        cronjob_commands(path, &docs)
    };
    let mut everywhere = 0;
    for doc in &docs {
        let mut all = Vec::new();
        strings(doc, &mut all);
        everywhere += all
            .iter()
            .map(|s| commands(s, &Env::new()).len())
            .sum::<usize>();
    }
    if !path.ends_with("kubernetes-cronjob.yml") {
        assert_eq!(
            found.len(),
            everywhere,
            "{}: a flotilla command outside the jobs' scripts",
            path.display()
        );
    }
    found
}

/// A plan path as a recipe names it, in this repository: the CronJob mounts `plans/` at `/plans`.
fn plan_in_repository(named: &Path) -> PathBuf {
    let relative = named.strip_prefix("/").unwrap_or(named);
    repository().join(relative)
}

/// The variables a plan must be given: every `${VAR}` without a default and every
/// `${VAR:?message}` in its strings (comments are not the plan).
fn required_variables(plan: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(plan).unwrap();
    let tree: Value = serde_saphyr::from_str(&text).unwrap();
    let mut texts = Vec::new();
    strings(&tree, &mut texts);
    let mut required = BTreeSet::new();
    for text in texts {
        let mut rest = text.as_str();
        while let Some(at) = rest.find('$') {
            let after = &rest[at + 1..];
            if let Some(literal) = after.strip_prefix("${") {
                rest = literal;
                continue;
            }
            let Some(body) = after.strip_prefix('{') else {
                rest = after;
                continue;
            };
            let end = body.find('}').expect("a terminated reference");
            let reference = &body[..end];
            let name_end = reference.find(':').unwrap_or(reference.len());
            if !reference[name_end..].starts_with(":-") {
                required.insert(reference[..name_end].to_owned());
            }
            rest = &body[end + 1..];
        }
    }
    required
}

/// The plan loaded as the recipe's command would load it, with placeholder values for the
/// variables the recipe sets from secrets and CI variables.
fn load_with(plan: &Path, env: &Env) -> ExpandedPlan {
    let bytes = std::fs::read(plan).unwrap();
    let lookup = |name: &str| -> Option<String> {
        env.get(name).map(|literal| {
            literal
                .clone()
                .unwrap_or_else(|| "placeholder-1".to_owned())
        })
    };
    flotilla::plan::load_source(plan, &bytes, &lookup).unwrap_or_else(|e| {
        panic!(
            "{}: does not load as the recipe runs it:\n{e}",
            plan.display()
        )
    })
}

/// The plans a command reads, with a glob like `plans/*.yaml` expanded as a shell would.
fn plans_read(command: &Command) -> Vec<PathBuf> {
    let named: Vec<&Path> = match command {
        Command::Apply(args) => vec![&args.plan],
        Command::Plan(args) => vec![&args.plan],
        Command::Validate(args) => args.plans.iter().map(PathBuf::as_path).collect(),
        _ => Vec::new(),
    };
    let mut plans = Vec::new();
    for path in named {
        let text = path.to_string_lossy();
        if let Some(dir) = text.strip_suffix("/*.yaml") {
            let mut all: Vec<PathBuf> = std::fs::read_dir(plan_in_repository(Path::new(dir)))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
                .collect();
            all.sort();
            plans.extend(all);
        } else {
            plans.push(plan_in_repository(path));
        }
    }
    plans
}

/// The checks every command of every recipe passes; returns how many commands were checked.
fn check_recipe(path: &Path) -> usize {
    let found = recipe_commands(path);
    for Found { place, words, env } in &found {
        let line = words.join(" ");
        let cli = Cli::try_parse_from(words)
            .unwrap_or_else(|e| panic!("{place}: `{line}` does not parse:\n{e}"));
        for plan in plans_read(&cli.command) {
            assert!(
                plan.exists(),
                "{place}: `{line}`: no plan {}",
                plan.display()
            );
            for name in required_variables(&plan) {
                assert!(
                    env.contains_key(&name),
                    "{place}: `{line}` reads {} without `{name}`, which it requires",
                    plan.display()
                );
            }
            let loaded = load_with(&plan, env);
            let selection = match &cli.command {
                Command::Apply(args) => Some(&args.selection),
                Command::Plan(args) => Some(&args.selection),
                _ => None,
            };
            if let Some(selection) = selection {
                // The real selection: unknown waves and shards across waves are refused here
                // exactly as the command would refuse them.
                flotilla::plan::select::select(&loaded, &selection.selection()).unwrap_or_else(
                    |e| {
                        panic!(
                            "{place}: `{line}`: {}",
                            e.explain(Path::new("PLAN")).join("\n")
                        )
                    },
                );
            }
        }
    }
    found.len()
}

#[test]
fn every_flotilla_command_in_the_ci_recipes_runs_as_written() {
    let mut files: Vec<_> = std::fs::read_dir(repository().join("examples/ci"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 3, "{files:?}");
    for file in files {
        let checked = check_recipe(&file);
        assert!(
            checked >= 1,
            "{}: no flotilla command found",
            file.display()
        );
    }
}

/// The pipelines run one wave at a time: every `apply` names one wave, every wave of the plan
/// is applied, each after its previous wave's gate (`report merge` of that wave's reports).
#[test]
fn the_pipelines_apply_every_wave_in_order_behind_the_previous_waves_gate() {
    let plan = repository().join("plans/fleet-upgrade.yaml");
    let env: Env = required_variables(&plan)
        .into_iter()
        .map(|n| (n, None))
        .collect();
    let waves: Vec<String> = load_with(&plan, &env)
        .waves
        .iter()
        .map(|w| w.name.clone())
        .collect();
    assert_eq!(waves, ["staging", "gold", "silver"]);

    // GitHub Actions: job `W` applies wave W and needs `gate-<previous>`; `gate-W` merges W's reports.
    let github = documents(&recipe("github-actions.yml")).remove(0);
    let gitlab = documents(&recipe("gitlab-ci.yml")).remove(0);
    for jobs in [&github["jobs"], &gitlab] {
        for (i, wave) in waves.iter().enumerate() {
            let job = &jobs[wave.as_str()];
            let mut scripts = Vec::new();
            strings(job, &mut scripts);
            let applies: Vec<Vec<String>> = scripts
                .iter()
                .flat_map(|s| commands(s, &Env::new()))
                .filter(|w| w[1] == "apply")
                .collect();
            assert_eq!(applies.len(), 1, "job {wave}: one apply");
            let named: Vec<&str> = applies[0]
                .windows(2)
                .filter(|w| w[0] == "--wave")
                .map(|w| w[1].as_str())
                .collect();
            assert_eq!(named, [wave.as_str()], "job {wave} applies its wave only");
            let needs = needs_of(job);
            if i > 0 {
                let gate = format!("gate-{}", waves[i - 1]);
                assert!(needs.contains(&gate), "job {wave} needs {gate}: {needs:?}");
            }
            assert!(
                needs.iter().any(|n| n == "build"),
                "job {wave} gets the binary built once"
            );
            let gate = &jobs[format!("gate-{wave}").as_str()];
            let mut gate_scripts = Vec::new();
            strings(gate, &mut gate_scripts);
            assert!(
                gate_scripts
                    .iter()
                    .any(|s| s.contains(&format!("flotilla report merge report-{wave}"))),
                "gate-{wave} merges the reports of wave {wave}"
            );
        }
    }
    // Nothing builds flotilla but the build job.
    for (name, job) in github["jobs"].as_object().unwrap() {
        let mut scripts = Vec::new();
        strings(job, &mut scripts);
        let builds = scripts.iter().any(|s| s.contains("cargo install"));
        assert_eq!(builds, name == "build", "job {name}");
    }
    for (name, job) in gitlab.as_object().unwrap() {
        let mut scripts = Vec::new();
        strings(job, &mut scripts);
        let builds = scripts.iter().any(|s| s.contains("cargo install"));
        assert_eq!(builds, name == "build", "job {name}");
    }
}

/// The jobs a job `needs:`: one name, a list of names, or GitLab's `{ job: NAME }` entries.
fn needs_of(job: &Value) -> Vec<String> {
    let name = |n: &Value| n.as_str().or(n["job"].as_str()).map(str::to_owned);
    match &job["needs"] {
        Value::Array(all) => all.iter().filter_map(name).collect(),
        one => name(one).into_iter().collect(),
    }
}

/// The pull-request jobs show what would change with `plan --diff`, not the plain listing.
#[test]
fn pull_requests_run_plan_diff() {
    for (file, job) in [
        ("github-actions.yml", "/jobs/validate"),
        ("gitlab-ci.yml", "/validate"),
    ] {
        let doc = documents(&recipe(file)).remove(0);
        let mut scripts = Vec::new();
        strings(doc.pointer(job).unwrap(), &mut scripts);
        let plans: Vec<Vec<String>> = scripts
            .iter()
            .flat_map(|s| commands(s, &Env::new()))
            .filter(|w| w[1] == "plan")
            .collect();
        assert!(!plans.is_empty(), "{file}");
        for words in plans {
            assert!(words.contains(&"--diff".to_owned()), "{file}: {words:?}");
        }
    }
}

/// What a secret volume's files are, as Kubernetes makes them: owned by root, in the group
/// `fsGroup` when the pod has one, with the volume's `defaultMode` (0644 when absent).
/// A volume's file mode as Kubernetes reads its YAML (1.1): a number, where a leading `0` means
/// octal (`0400`); `None` when absent. The YAML 1.2 reader here gives `0400` as the float 400.0
/// (an integer is an integer), so a float's digits are read back as octal.
fn file_mode(value: &Value) -> Option<u64> {
    match value {
        Value::Null => None,
        Value::Number(n) if n.is_f64() => {
            let digits = format!("{}", n.as_f64().expect("a float"));
            Some(u64::from_str_radix(&digits, 8).expect("an octal mode"))
        }
        Value::Number(n) => n.as_u64(),
        Value::String(text) if text.starts_with('0') => {
            Some(u64::from_str_radix(text, 8).expect("an octal mode"))
        }
        other => panic!("{other} is not a file mode"),
    }
}

/// The pod's processes are in the `fsGroup` group, so the group's bits apply to them.
fn readable_by(mode: u64, uid: u64, fs_group: Option<u64>) -> bool {
    uid == 0 || mode & 0o004 != 0 || (mode & 0o040 != 0 && fs_group.is_some())
}

#[test]
fn the_cronjob_can_read_its_credentials_and_keeps_its_journal() {
    let path = recipe("kubernetes-cronjob.yml");
    let docs = documents(&path);
    let pod = pod_spec(&docs);
    let security = &pod["securityContext"];
    let container = &pod["containers"][0];
    let uid = container["securityContext"]["runAsUser"]
        .as_u64()
        .or(security["runAsUser"].as_u64())
        .expect("runAsUser");
    assert_ne!(uid, 0, "not root");
    let fs_group = security["fsGroup"].as_u64();

    let mounted: BTreeMap<&str, &str> = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap(),
                m["mountPath"].as_str().unwrap(),
            )
        })
        .collect();
    let volumes = pod["volumes"].as_array().unwrap();
    let mut secrets = 0;
    for volume in volumes {
        let name = volume["name"].as_str().unwrap();
        if !mounted.contains_key(name) {
            continue;
        }
        for kind in ["secret", "configMap"] {
            let Some(source) = volume.get(kind) else {
                continue;
            };
            secrets += usize::from(kind == "secret");
            let mode = file_mode(&source["defaultMode"]).unwrap_or(0o644);
            assert!(
                readable_by(mode, uid, fs_group),
                "volume {name}: mode {mode:o} is not readable by user {uid} (fsGroup {fs_group:?})"
            );
            for item in source["items"].as_array().into_iter().flatten() {
                let mode = file_mode(&item["mode"]).unwrap_or(mode);
                assert!(readable_by(mode, uid, fs_group), "volume {name}: {item}");
            }
            if kind == "secret" {
                assert_eq!(
                    mode & 0o007,
                    0,
                    "volume {name}: others may not read a secret"
                );
            }
        }
    }
    assert_eq!(secrets, 1, "the credentials are one mounted Secret");
    // The profile file lands where the credentials are looked for: $HOME/.huaweicloud.
    let home = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "HOME")
        .and_then(|e| e["value"].as_str())
        .expect("HOME");
    assert!(
        mounted
            .values()
            .any(|p| *p == format!("{home}/.huaweicloud"))
    );

    // The journal and the report go to a volume backed by a claim this file creates.
    let claims: BTreeSet<&str> = docs
        .iter()
        .filter(|d| d["kind"] == "PersistentVolumeClaim")
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for flag in ["--journal", "--report-json"] {
        let at = args.iter().position(|a| *a == flag).expect(flag);
        let file = args[at + 1];
        let volume = volumes
            .iter()
            .find(|v| {
                mounted
                    .get(v["name"].as_str().unwrap())
                    .is_some_and(|m| file.starts_with(&format!("{m}/")))
            })
            .unwrap_or_else(|| panic!("{flag} {file} is on no volume"));
        let claim = volume["persistentVolumeClaim"]["claimName"]
            .as_str()
            .unwrap_or_else(|| panic!("{flag} {file} is not on a persistent volume: {volume}"));
        assert!(
            claims.contains(claim),
            "claim {claim} is created: {claims:?}"
        );
    }

    // Every variable the plan requires comes from a Secret or a ConfigMap, none written inline.
    let plan_arg = args.iter().find(|a| a.ends_with(".yaml")).unwrap();
    let plan = plan_in_repository(Path::new(plan_arg));
    let env = container["env"].as_array().unwrap();
    for name in required_variables(&plan) {
        let entry = env
            .iter()
            .find(|e| e["name"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} is not set"));
        let from = &entry["valueFrom"];
        assert!(
            from.get("secretKeyRef").is_some() || from.get("configMapKeyRef").is_some(),
            "{name} comes from a Secret or a ConfigMap: {entry}"
        );
    }
}

/// The Dockerfile's stages: (base image, instructions), in order.
fn dockerfile_stages() -> Vec<(String, Vec<String>)> {
    let text = std::fs::read_to_string(repository().join("Dockerfile")).unwrap();
    let joined = text.replace("\\\n", " ");
    let mut stages: Vec<(String, Vec<String>)> = Vec::new();
    for line in joined.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(from) = line.strip_prefix("FROM ") {
            let base = from.split_whitespace().next().unwrap().to_owned();
            stages.push((base, Vec::new()));
        } else if let Some((_, instructions)) = stages.last_mut() {
            instructions.push(line.to_owned());
        }
    }
    stages
}

#[test]
fn the_dockerfile_builds_in_one_stage_and_runs_as_the_cronjobs_non_root_user() {
    let stages = dockerfile_stages();
    assert!(stages.len() >= 2, "multi-stage: {stages:?}");
    let (build_base, build) = &stages[0];
    assert!(build_base.starts_with("rust:1.95"), "{build_base}");
    assert!(
        build
            .iter()
            .any(|i| i.contains("cargo build --profile dist --locked")),
        "{build:?}"
    );
    let (runtime_base, runtime) = stages.last().unwrap();
    assert!(
        runtime_base.contains("distroless") || runtime_base.contains("-slim"),
        "a small base: {runtime_base}"
    );
    let user = runtime
        .iter()
        .rev()
        .find_map(|i| i.strip_prefix("USER "))
        .expect("the runtime stage sets USER");
    let uid: u64 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("USER is numeric, so runAsNonRoot can check it");
    assert_ne!(uid, 0);
    assert!(
        runtime
            .iter()
            .any(|i| i.starts_with("ENTRYPOINT") && i.contains("flotilla")),
        "{runtime:?}"
    );

    let cronjob = documents(&recipe("kubernetes-cronjob.yml"));
    let pod = pod_spec(&cronjob);
    assert_eq!(pod["securityContext"]["runAsUser"].as_u64(), Some(uid));
    let recipe_text = std::fs::read_to_string(recipe("kubernetes-cronjob.yml")).unwrap();
    let image = pod["containers"][0]["image"].as_str().unwrap();
    assert!(
        recipe_text.contains(&format!("docker build -t {image} .")),
        "the CronJob says how its image {image} is built from the Dockerfile"
    );
}

#[test]
fn the_recipe_checker_catches_an_unknown_flag_a_missing_wave_and_a_shard_across_waves() {
    let env: Env = [("PLAN".to_owned(), Some("plans/demo.yaml".to_owned()))].into();
    let bad = commands("flotilla apply plans/demo.yaml --no-such-flag\n", &env);
    assert_eq!(bad.len(), 1);
    assert!(Cli::try_parse_from(&bad[0]).is_err());
    let good = commands(
        "flotilla report merge report-*.json -o report.json && echo done\n",
        &env,
    );
    assert!(Cli::try_parse_from(&good[0]).is_ok());

    let demo = load_with(&repository().join("plans/demo.yaml"), &Env::new());
    for (line, refused) in [
        ("flotilla apply $PLAN --wave canary --shard 1/2", false),
        ("flotilla apply $PLAN --wave cnary", true),
        ("flotilla apply $PLAN --shard 1/2", true),
    ] {
        let words = &commands(line, &env)[0];
        let Command::Apply(args) = Cli::try_parse_from(words).unwrap().command else {
            panic!("apply");
        };
        let result = flotilla::plan::select::select(&demo, &args.selection.selection());
        assert_eq!(result.is_err(), refused, "{line}");
    }

    let required = required_variables(&repository().join("plans/fleet-upgrade.yaml"));
    assert_eq!(
        required.into_iter().collect::<Vec<_>>(),
        [
            "CN_EAST_3_PROJECT_ID",
            "CN_NORTH_4_PROJECT_ID",
            "IMAGE_TAG",
            "PAYMENTS_DB_PASSWORD"
        ]
    );
    assert!(required_variables(&repository().join("plans/demo.yaml")).is_empty());

    // 0400 owned by root is what the CronJob had: unreadable by 65532, fsGroup or not.
    assert_eq!(file_mode(&Value::String("0400".into())), Some(0o400));
    let written: Value = serde_saphyr::from_str("defaultMode: 0400").unwrap();
    assert_eq!(file_mode(&written["defaultMode"]), Some(0o400));
    assert_eq!(file_mode(&serde_json::json!(288)), Some(0o440));
    assert!(!readable_by(0o400, 65532, Some(65532)));
    assert!(!readable_by(0o440, 65532, None));
    assert!(readable_by(0o440, 65532, Some(65532)));
}
