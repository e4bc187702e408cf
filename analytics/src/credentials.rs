//! Credentials written into an object's text: a ConfigMap's values, and the files inside them.
//!
//! People put credentials into ConfigMaps as keys (`DB_PASSWORD: …`) and at least as often
//! inside the files a value holds: properties and `.env` files (`aws_secret_access_key = …`),
//! YAML or JSON documents (`password: …`, `"token": "…"`), connection strings
//! (`…;Password=…;`), URLs with a password, private keys. [`credentials_in`] finds them all,
//! and leaves out placeholders (`${VAR}`, `changeme`, `<your-key>`, empty values, references
//! to a secret store or a file) and keys that only mention a credential (`token_ttl`,
//! `password_min_length`, `secretName`).

use serde_json::Value;

/// Most places reported for one object.
const MAX_FOUND: usize = 8;

/// Where in the object's JSON text credentials are written: `DB_PASSWORD`, or a value's file
/// and the key inside it (`access.properties: aws_secret_access_key`); empty when there are none
/// (or the text is not JSON).
pub fn credentials_in(object_json: &str) -> Vec<String> {
    let Ok(value) = serde_json::from_str::<Value>(object_json) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    walk(&value, None, &mut found, 0);
    found
}

/// Looks at every string in `value` with the key it is under; `place` is the key of the
/// string holding `value` when `value` was a document inside a string.
fn walk(value: &Value, place: Option<&str>, found: &mut Vec<String>, depth: u8) {
    if depth > 16 || found.len() >= MAX_FOUND {
        return;
    }
    match value {
        Value::Object(members) => {
            // A JSON Patch operation: the key is the path's last part.
            if let (Some(Value::String(path)), Some(Value::String(text))) =
                (members.get("path"), members.get("value"))
            {
                let key = path.rsplit('/').next().unwrap_or(path).replace("~1", "/");
                string(&key, text, place, found, depth);
            }
            for (key, member) in members {
                match member {
                    Value::String(text) => string(key, text, place, found, depth),
                    // Who last wrote which field: names of fields, never their values.
                    _ if key == "managedFields" => {}
                    other => walk(other, place, found, depth + 1),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                walk(item, place, found, depth + 1);
            }
        }
        _ => {}
    }
}

/// A string `text` under `key`: a credential itself, or a file or document holding some.
fn string(key: &str, text: &str, place: Option<&str>, found: &mut Vec<String>, depth: u8) {
    let here = |inner: &str| match place {
        Some(outer) => format!("{outer}: {inner}"),
        None => inner.to_string(),
    };
    if is_credential_key(key) && !is_placeholder(text) {
        add(found, here(key));
    }
    let trimmed = text.trim_start();
    if trimmed.starts_with(['{', '['])
        && let Ok(document) = serde_json::from_str::<Value>(trimmed)
    {
        let outer = here(key);
        walk(&document, Some(&outer), found, depth + 1);
        return;
    }
    if text.contains("PRIVATE KEY-----") && text.contains("-----BEGIN ") {
        add(found, here(&format!("{key} (private key)")));
    }
    if has_aws_access_key_id(text) {
        add(found, here(&format!("{key} (AWS access key id)")));
    }
    if has_url_password(text) {
        add(found, here(&format!("{key} (password in a URL)")));
    }
    if !text.contains(['\n', '=', ':']) {
        return;
    }
    let outer = here(key);
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with(['#', ';', '!']) || line.starts_with("//") {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let line = line.strip_prefix("- ").unwrap_or(line);
        // Connection strings and query strings hold several assignments on one line.
        for part in line.split([';', '&']) {
            if let Some((name, value)) = assignment(part)
                && is_credential_key(name)
                && !is_placeholder(value)
            {
                add(found, format!("{outer}: {name}"));
            }
        }
    }
}

fn add(found: &mut Vec<String>, place: String) {
    if found.len() < MAX_FOUND && !found.contains(&place) {
        found.push(place);
    }
}

/// `name = value`, `name: value` or `"name": "value",` as one line of a file writes it; the
/// name a plain identifier.
fn assignment(part: &str) -> Option<(&str, &str)> {
    let at = part.find(['=', ':'])?;
    let name = part[..at].trim().trim_matches(['"', '\'']);
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return None;
    }
    let value = part[at + 1..]
        .trim()
        .trim_end_matches(',')
        .trim()
        .trim_matches(['"', '\'']);
    Some((name, value))
}

/// The words of a key, lowercased: split at separators and where camel case turns upper.
fn words(key: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut previous_lower = false;
    for c in key.chars() {
        if !c.is_ascii_alphanumeric() {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            previous_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && previous_lower && !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
        previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        word.push(c.to_ascii_lowercase());
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// Whether a key names a credential: its last words are one (`DB_PASSWORD`, `jwtSecret`,
/// `aws_s3_access_key_id`), not merely mention one (`token_ttl`, `secretName`).
fn is_credential_key(key: &str) -> bool {
    const ENDINGS: &[&[&str]] = &[
        &["password"],
        &["passwd"],
        &["pwd"],
        &["pass"],
        &["passphrase"],
        &["secret"],
        &["token"],
        &["apikey"],
        &["api", "key"],
        &["access", "key"],
        &["access", "key", "id"],
        &["secret", "key"],
        &["private", "key"],
        &["accountkey"],
        &["account", "key"],
    ];
    let words = words(key);
    ENDINGS.iter().any(|ending| {
        words.len() >= ending.len() && words[words.len() - ending.len()..] == **ending
    })
}

/// Whether a value stands for a credential rather than being one: empty or short, a variable
/// or template, a marker to fill in, a reference to a secret store or a file, a duration.
fn is_placeholder(value: &str) -> bool {
    const WORDS: &[&str] = &[
        "changeme",
        "change_me",
        "change-me",
        "changeit",
        "replaceme",
        "replace_me",
        "replace-me",
        "todo",
        "tbd",
        "fixme",
        "none",
        "null",
        "nil",
        "undefined",
        "empty",
        "true",
        "false",
        "yes",
        "no",
        "password",
        "secret",
        "token",
        "example",
        "dummy",
        "sample",
        "test",
        "redacted",
        "hidden",
        "masked",
        "required",
        "optional",
    ];
    let v = value.trim().trim_matches(['"', '\'']);
    let lower = v.to_ascii_lowercase();
    v.chars().count() < 4
        || v.starts_with('$')
        || v.contains("${")
        || v.contains("{{")
        || v.contains("%(")
        || (v.starts_with('<') && v.ends_with('>'))
        || (v.starts_with('[') && v.ends_with(']'))
        || v.starts_with(['/', '~'])
        || v.starts_with("./")
        || lower.starts_with("file:")
        || lower.starts_with("vault:")
        || lower.starts_with("ref+")
        || lower.starts_with("arn:aws:secretsmanager:")
        || lower.starts_with("arn:aws:ssm:")
        || lower.starts_with("secretref")
        || WORDS.contains(&lower.as_str())
        || v.chars().all(|c| c == v.chars().next().unwrap_or(c))
        || is_duration(&lower)
}

/// `24h`, `30m`, `3600s`.
fn is_duration(v: &str) -> bool {
    let Some(number) = v.strip_suffix(['s', 'm', 'h', 'd']) else {
        return false;
    };
    !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit())
}

/// Whether the text holds an AWS access key id (`AKIA` or `ASIA` and 16 more letters and
/// digits, on its own).
fn has_aws_access_key_id(text: &str) -> bool {
    let b = text.as_bytes();
    (0..b.len().saturating_sub(19)).any(|i| {
        (b[i..].starts_with(b"AKIA") || b[i..].starts_with(b"ASIA"))
            && b[i + 4..i + 20]
                .iter()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            && (i == 0 || !b[i - 1].is_ascii_alphanumeric())
            && b.get(i + 20).is_none_or(|c| !c.is_ascii_alphanumeric())
    })
}

/// Whether the text holds a URL with a password (`scheme://user:password@host`).
fn has_url_password(text: &str) -> bool {
    text.match_indices("://").any(|(at, _)| {
        let rest = &text[at + 3..];
        let authority = rest
            .split(['/', ' ', '"', '\n', '?', '#'])
            .next()
            .unwrap_or("");
        match authority.rsplit_once('@') {
            Some((userinfo, _)) => userinfo
                .split_once(':')
                .is_some_and(|(_, password)| !is_placeholder(password)),
            None => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(data: serde_json::Value) -> Vec<String> {
        credentials_in(&serde_json::json!({"kind": "ConfigMap", "data": data}).to_string())
    }

    #[test]
    fn credentials_as_keys() {
        assert_eq!(
            found(serde_json::json!({"DB_HOST": "db", "DB_PASSWORD": "S3cr3t-Pa55"})),
            ["DB_PASSWORD"]
        );
        assert_eq!(
            found(serde_json::json!({"jwtSecret": "k8f2Lq9xZ"})),
            ["jwtSecret"]
        );
    }

    #[test]
    fn credentials_inside_files_and_documents() {
        let properties = "aws_access_key_id = MY-ID\naws_secret_access_key = MY-KEY\n";
        assert_eq!(
            found(serde_json::json!({"access.properties": properties})),
            [
                "access.properties: aws_access_key_id",
                "access.properties: aws_secret_access_key"
            ]
        );
        for (file, text) in [
            (
                ".env",
                "LOG_LEVEL=info\nexport STRIPE_API_KEY=sk_live_51HxQ2\n",
            ),
            (
                "app.yaml",
                "database:\n  host: db\n  password: hunter2-prod\n",
            ),
            ("config.json", "{\"auth\": {\"token\": \"ghp_4Jx0aPq7Vn\"}}"),
            (
                "db.conn",
                "Server=db;Database=app;User Id=sa;Password=Pa55w0rd!;",
            ),
            ("s3.cfg", "[default]\nsecret_key = wJalrXUtnFEMI/K7MDENG\n"),
        ] {
            let hits = found(serde_json::json!({ file: text }));
            assert_eq!(hits.len(), 1, "{file}: {hits:?}");
            assert!(hits[0].starts_with(file), "{hits:?}");
        }
        let key =
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\n";
        assert_eq!(
            found(serde_json::json!({"tls.key": key})),
            ["tls.key (private key)"]
        );
        assert_eq!(
            found(serde_json::json!({"notes": "use AKIAIOSFODNN7EXAMPLE for uploads"})),
            ["notes (AWS access key id)"]
        );
        assert_eq!(
            found(serde_json::json!({"DATABASE_URL": "postgres://app:Xk29-qPz@db:5432/app"})),
            ["DATABASE_URL (password in a URL)"]
        );
    }

    #[test]
    fn placeholders_and_mentions_are_not_credentials() {
        let clean = serde_json::json!({
            "token_ttl": "24h",
            "password_min_length": "12",
            "secretName": "app-tls",
            "DB_PASSWORD": "${DB_PASSWORD}",
            "API_KEY": "changeme",
            "CLIENT_SECRET": "<your-client-secret>",
            "SECRET_KEY": "",
            "AWS_SECRET_ACCESS_KEY": "xxxxxxxx",
            "GITHUB_TOKEN": "{{ .Values.token }}",
            "VAULT_TOKEN": "vault:secret/data/app#token",
            "TOKEN_FILE": "/var/run/secrets/token",
            "PASSWORD_FILE": "/etc/app/password",
            "app.properties": "password=\nsecret.key=${SECRET}\napi.key = <set me>\n# token = abc123def\n",
            "DATABASE_URL": "postgres://app:${DB_PASS}@db:5432/app",
            "ui.properties": "color.good=purple\ncolor.bad=yellow\nallow.textmode=true\n",
        });
        assert_eq!(found(clean), Vec::<String>::new());
        // Who last wrote which field is not what they wrote.
        let managed = serde_json::json!({"kind": "ConfigMap", "metadata": {"managedFields": [
            {"fieldsV1": {"f:data": {"f:password": {}}}}]}, "data": {"LOG_LEVEL": "info"}});
        assert!(credentials_in(&managed.to_string()).is_empty());
        assert!(credentials_in("not json").is_empty());
    }

    #[test]
    fn a_json_patch_names_the_key_it_writes() {
        let patch = r#"[{"op":"add","path":"/data/DB_PASSWORD","value":"hunter2-prod"}]"#;
        assert_eq!(credentials_in(patch), ["DB_PASSWORD"]);
    }
}
