//! SQL functions that detection rules need and DataFusion does not ship.
//!
//! - `ip_in_cidrs(ip, cidr, ...)`: whether an address (or any address of a list) lies in any of
//!   the networks (NULL when no network is given, so a rule over an unconfigured list stays quiet).
//! - `list_any_regex(list, regex)`: whether any element of a string list matches.
//! - `registered_domain(name)`: the registrable domain of a DNS name (`evil.co.uk`,
//!   `example.com`), and `subdomain_of(name)`: what comes before it.
//! - `image_registry(image)`: the registry host of an image reference (`docker.io` by default).
//! - `image_is_pinned(image)`: whether the reference names a digest or a tag other than `latest`.
//! - `list_any_prefix(list, prefix, ...)`: whether any element of a string list starts with any
//!   of the prefixes (e.g. sensitive hostPath mounts).
//! - `json_get(json_text, 'a.b.0.c')`: the value at a dotted path of a JSON text column, as text;
//!   with more than one key argument, each argument is one key, dots included
//!   (`json_get(request_object, 'metadata', 'labels', 'app.kubernetes.io/name')`).
//! - `json_key(json_text, key)`: the value of one top-level key (dots are part of the key).
//! - `json_key_is_null(json_text, key)`: whether the key is present with the value `null` (a merge
//!   patch removing it).
//! - `json_missing_keys(json_text, key, ...)`: the keys absent from a JSON object (NULL when no
//!   key is given).
//! - `shannon_entropy(text)`: bits per character, for random-looking names.
//! - `is_system_principal(user)`: whether a user name is a control-plane component doing its job
//!   (kubelets, controllers, scheduler, kube-system service accounts, cloud-managed components);
//!   false for an unknown (null) user.
//! - `component_images(user_name, namespace, images)`: the images as `namespace:repository`
//!   (tag and digest left out, Docker Hub's defaults written out) when a service account, a
//!   node or a controller wrote the object; null when a person did. Rules match it against the
//!   shared list of the cluster's own components.
//! - `credentials_in(json_text)`: where credentials are written in an object: keys, and keys
//!   inside the files and documents its values hold (an empty list when nowhere).
//! - `is_interactive_client(user_agent)`: whether a user agent is a person's tool or a script
//!   (kubectl, curl, python, ...) rather than a controller; an empty user agent counts as one.
//! - `images_outside(images, registry, ...)`: the images whose registry (or registry path) is not
//!   listed (NULL when no registry is listed).
//! - `unpinned_images(images)`: the images without a digest or a tag other than `latest`.
//! - `grants_any(rule_grants, 'resource:verb', ...)`: whether a role grants any of the pairs,
//!   wildcards included.

use std::net::IpAddr;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Float64Builder, StringArray, StringBuilder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;
use ipnet::IpNet;

/// Registers every audithound function on a session.
pub fn register_all(ctx: &SessionContext) {
    for f in [
        Func::IpInCidrs,
        Func::ImageRegistry,
        Func::ImageIsPinned,
        Func::ListAnyPrefix,
        Func::JsonGet,
        Func::ShannonEntropy,
        Func::IsSystemPrincipal,
        Func::IsInteractiveClient,
        Func::ImagesOutside,
        Func::UnpinnedImages,
        Func::GrantsAny,
        Func::JsonKey,
        Func::JsonKeyIsNull,
        Func::JsonMissingKeys,
        Func::ListAnyRegex,
        Func::RegisteredDomain,
        Func::SubdomainOf,
        Func::ComponentImages,
        Func::CredentialsIn,
    ] {
        ctx.register_udf(ScalarUDF::new_from_impl(AuditFunction::new(f)));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Func {
    IpInCidrs,
    ImageRegistry,
    ImageIsPinned,
    ListAnyPrefix,
    JsonGet,
    ShannonEntropy,
    IsSystemPrincipal,
    IsInteractiveClient,
    ImagesOutside,
    UnpinnedImages,
    GrantsAny,
    JsonKey,
    JsonKeyIsNull,
    JsonMissingKeys,
    ListAnyRegex,
    RegisteredDomain,
    SubdomainOf,
    ComponentImages,
    CredentialsIn,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct AuditFunction {
    func: Func,
    signature: Signature,
}

impl AuditFunction {
    fn new(func: Func) -> Self {
        AuditFunction {
            func,
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for AuditFunction {
    fn name(&self) -> &str {
        match self.func {
            Func::IpInCidrs => "ip_in_cidrs",
            Func::ImageRegistry => "image_registry",
            Func::ImageIsPinned => "image_is_pinned",
            Func::ListAnyPrefix => "list_any_prefix",
            Func::JsonGet => "json_get",
            Func::ShannonEntropy => "shannon_entropy",
            Func::IsSystemPrincipal => "is_system_principal",
            Func::IsInteractiveClient => "is_interactive_client",
            Func::ImagesOutside => "images_outside",
            Func::UnpinnedImages => "unpinned_images",
            Func::GrantsAny => "grants_any",
            Func::JsonKey => "json_key",
            Func::JsonKeyIsNull => "json_key_is_null",
            Func::JsonMissingKeys => "json_missing_keys",
            Func::ListAnyRegex => "list_any_regex",
            Func::RegisteredDomain => "registered_domain",
            Func::SubdomainOf => "subdomain_of",
            Func::ComponentImages => "component_images",
            Func::CredentialsIn => "credentials_in",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        let (min, max) = match self.func {
            Func::IpInCidrs | Func::ListAnyPrefix | Func::ImagesOutside | Func::GrantsAny => {
                (2, usize::MAX)
            }
            Func::JsonGet => (2, usize::MAX),
            Func::JsonKey | Func::JsonKeyIsNull | Func::ListAnyRegex => (2, 2),
            Func::JsonMissingKeys => (2, usize::MAX),
            Func::ComponentImages => (3, 3),
            _ => (1, 1),
        };
        if args.len() < min || args.len() > max {
            return Err(DataFusionError::Plan(format!(
                "{}() takes {} argument(s), got {}",
                self.name(),
                if min == max {
                    min.to_string()
                } else {
                    format!("at least {min}")
                },
                args.len()
            )));
        }
        Ok(match self.func {
            Func::IpInCidrs
            | Func::ImageIsPinned
            | Func::ListAnyPrefix
            | Func::IsSystemPrincipal
            | Func::IsInteractiveClient
            | Func::GrantsAny
            | Func::JsonKeyIsNull
            | Func::ListAnyRegex => DataType::Boolean,
            Func::ImageRegistry
            | Func::JsonGet
            | Func::JsonKey
            | Func::RegisteredDomain
            | Func::SubdomainOf => DataType::Utf8,
            Func::ShannonEntropy => DataType::Float64,
            Func::ImagesOutside
            | Func::UnpinnedImages
            | Func::JsonMissingKeys
            | Func::ComponentImages
            | Func::CredentialsIn => DataType::List(Arc::new(
                datafusion::arrow::datatypes::Field::new("item", DataType::Utf8, true),
            )),
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        match self.func {
            Func::IpInCidrs => ip_in_cidrs(&args.args, rows),
            Func::ImageRegistry => map_text(&args.args[0], rows, |s, b: &mut StringBuilder| {
                b.append_value(image_registry(s))
            }),
            Func::ImageIsPinned => map_text(&args.args[0], rows, |s, b: &mut BooleanBuilder| {
                b.append_value(image_is_pinned(s))
            }),
            Func::ShannonEntropy => map_text(&args.args[0], rows, |s, b: &mut Float64Builder| {
                b.append_value(shannon_entropy(s))
            }),
            Func::ListAnyPrefix => list_any_prefix(&args.args, rows),
            Func::JsonGet => json_get(&args.args, rows),
            Func::JsonKey => {
                let Some(key) = scalar_strings(&args.args[1..])? else {
                    return Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)));
                };
                map_text(
                    &args.args[0],
                    rows,
                    |text, b: &mut StringBuilder| match top_level(text)
                        .and_then(|m| m.get(&key[0]).cloned())
                    {
                        Some(serde_json::Value::String(s)) => b.append_value(s),
                        Some(serde_json::Value::Null) | None => b.append_null(),
                        Some(other) => b.append_value(other.to_string()),
                    },
                )
            }
            Func::JsonKeyIsNull => {
                let Some(key) = scalar_strings(&args.args[1..])? else {
                    return Ok(ColumnarValue::Scalar(ScalarValue::Boolean(None)));
                };
                map_text(&args.args[0], rows, |text, b: &mut BooleanBuilder| {
                    b.append_value(
                        top_level(text).is_some_and(|m| {
                            m.get(&key[0]).is_some_and(serde_json::Value::is_null)
                        }),
                    )
                })
            }
            Func::RegisteredDomain => map_text(&args.args[0], rows, |s, b: &mut StringBuilder| {
                b.append_value(split_domain(s).1)
            }),
            Func::SubdomainOf => map_text(&args.args[0], rows, |s, b: &mut StringBuilder| {
                b.append_value(split_domain(s).0)
            }),
            Func::ListAnyRegex => {
                let Some(pattern) = scalar_strings(&args.args[1..])? else {
                    return Ok(ColumnarValue::Scalar(ScalarValue::Boolean(None)));
                };
                let re = regex::Regex::new(&pattern[0])
                    .map_err(|e| DataFusionError::Execution(format!("list_any_regex: {e}")))?;
                list_predicate(&args.args[0], rows, |items| {
                    items.iter().any(|i| re.is_match(i))
                })
            }
            Func::JsonMissingKeys => {
                let Some(keys) = scalar_strings(&args.args[1..])? else {
                    return Ok(ColumnarValue::Scalar(ScalarValue::try_from(
                        args.return_field.data_type(),
                    )?));
                };
                missing_keys(&args.args[0], rows, &keys)
            }
            Func::IsSystemPrincipal => is_system_principal_column(&args.args[0], rows),
            Func::ComponentImages => component_images(&args.args, rows),
            Func::CredentialsIn => credentials_in_column(&args.args[0], rows),
            Func::IsInteractiveClient => is_interactive_client_column(&args.args[0], rows),
            Func::ImagesOutside => {
                let Some(allowed) = scalar_strings(&args.args[1..])? else {
                    return Ok(ColumnarValue::Scalar(ScalarValue::try_from(
                        args.return_field.data_type(),
                    )?));
                };
                map_list(&args.args[0], rows, |img| !image_allowed(img, &allowed))
            }
            Func::UnpinnedImages => map_list(&args.args[0], rows, |img| !image_is_pinned(img)),
            Func::GrantsAny => {
                let Some(wanted) = scalar_strings(&args.args[1..])? else {
                    return Ok(ColumnarValue::Scalar(ScalarValue::Boolean(None)));
                };
                list_predicate(&args.args[0], rows, |grants| {
                    grants
                        .iter()
                        .any(|g| wanted.iter().any(|w| grant_covers(g, w)))
                })
            }
        }
    }
}

/// A builder that can take a null, so `map_text` can be generic over output types.
trait NullableBuilder: Default {
    fn null(&mut self);
    fn done(self) -> ArrayRef;
}

impl NullableBuilder for StringBuilder {
    fn null(&mut self) {
        self.append_null()
    }
    fn done(mut self) -> ArrayRef {
        Arc::new(self.finish())
    }
}
impl NullableBuilder for BooleanBuilder {
    fn null(&mut self) {
        self.append_null()
    }
    fn done(mut self) -> ArrayRef {
        Arc::new(self.finish())
    }
}
impl NullableBuilder for Float64Builder {
    fn null(&mut self) {
        self.append_null()
    }
    fn done(mut self) -> ArrayRef {
        Arc::new(self.finish())
    }
}

fn as_strings(v: &ColumnarValue, rows: usize) -> Result<StringArray> {
    let array = v.to_array(rows)?;
    let utf8 = cast(&array, &DataType::Utf8)?;
    Ok(utf8.as_string::<i32>().clone())
}

fn map_text<B: NullableBuilder>(
    arg: &ColumnarValue,
    rows: usize,
    f: impl Fn(&str, &mut B),
) -> Result<ColumnarValue> {
    let strings = as_strings(arg, rows)?;
    let mut b = B::default();
    for i in 0..strings.len() {
        if strings.is_null(i) {
            b.null();
        } else {
            f(strings.value(i), &mut b);
        }
    }
    Ok(ColumnarValue::Array(b.done()))
}

/// Scalar string arguments (lists of networks or prefixes); `None` if any is NULL.
fn scalar_strings(args: &[ColumnarValue]) -> Result<Option<Vec<String>>> {
    let mut out = Vec::new();
    for a in args {
        match a {
            ColumnarValue::Scalar(s) => {
                if s.is_null() {
                    return Ok(None);
                }
                match s {
                    ScalarValue::Utf8(Some(v))
                    | ScalarValue::LargeUtf8(Some(v))
                    | ScalarValue::Utf8View(Some(v)) => out.push(v.clone()),
                    other => out.push(other.to_string()),
                }
            }
            ColumnarValue::Array(_) => return exec_err!("list arguments must be constants"),
        }
    }
    Ok(Some(out))
}

fn ip_in_cidrs(args: &[ColumnarValue], rows: usize) -> Result<ColumnarValue> {
    let Some(cidrs) = scalar_strings(&args[1..])? else {
        return Ok(ColumnarValue::Scalar(ScalarValue::Boolean(None)));
    };
    let nets = cidrs
        .iter()
        .map(|c| {
            parse_net(c)
                .ok_or_else(|| DataFusionError::Execution(format!("`{c}` is not a CIDR network")))
        })
        .collect::<Result<Vec<IpNet>>>()?;
    if matches!(args[0].data_type(), DataType::List(_)) {
        return list_predicate(&args[0], rows, |ips| {
            ips.iter().any(|ip| ip_matches(ip, &nets))
        });
    }
    map_text(&args[0], rows, |ip, b: &mut BooleanBuilder| {
        b.append_value(ip_matches(ip, &nets));
    })
}

/// Parses `10.0.0.0/8`, or a bare address as a single-host network.
pub fn parse_net(text: &str) -> Option<IpNet> {
    let t = text.trim();
    t.parse::<IpNet>()
        .ok()
        .or_else(|| t.parse::<IpAddr>().ok().map(IpNet::from))
}

fn ip_matches(ip: &str, nets: &[IpNet]) -> bool {
    let ip = ip.trim().trim_start_matches('[').trim_end_matches(']');
    match ip.parse::<IpAddr>() {
        Ok(addr) => {
            let addr = match addr {
                IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(addr),
                v4 => v4,
            };
            nets.iter().any(|n| n.contains(&addr))
        }
        Err(_) => false,
    }
}

fn list_any_prefix(args: &[ColumnarValue], rows: usize) -> Result<ColumnarValue> {
    let Some(prefixes) = scalar_strings(&args[1..])? else {
        return Ok(ColumnarValue::Scalar(ScalarValue::Boolean(None)));
    };
    let array = args[0].to_array(rows)?;
    let list = match array.data_type() {
        DataType::List(_) => array.as_list::<i32>().clone(),
        other => return exec_err!("list_any_prefix() needs a list of strings, got {other}"),
    };
    let mut b = BooleanBuilder::with_capacity(rows);
    for i in 0..list.len() {
        if list.is_null(i) {
            b.append_null();
            continue;
        }
        let values = cast(&list.value(i), &DataType::Utf8)?;
        let values = values.as_string::<i32>();
        let hit = values
            .iter()
            .flatten()
            .any(|v| prefixes.iter().any(|p| path_has_prefix(v, p)));
        b.append_value(hit);
    }
    Ok(ColumnarValue::Array(Arc::new(b.finish())))
}

/// Keeps the elements of a string-list column that pass `keep`.
fn map_list(
    arg: &ColumnarValue,
    rows: usize,
    keep: impl Fn(&str) -> bool,
) -> Result<ColumnarValue> {
    use datafusion::arrow::array::ListBuilder;
    let array = arg.to_array(rows)?;
    let DataType::List(_) = array.data_type() else {
        return exec_err!("expected a list of strings, got {}", array.data_type());
    };
    let list = array.as_list::<i32>();
    let mut b = ListBuilder::new(StringBuilder::new());
    for i in 0..list.len() {
        if list.is_null(i) {
            b.append(false);
            continue;
        }
        let values = cast(&list.value(i), &DataType::Utf8)?;
        for v in values.as_string::<i32>().iter().flatten() {
            if keep(v) {
                b.values().append_value(v);
            }
        }
        b.append(true);
    }
    Ok(ColumnarValue::Array(Arc::new(b.finish())))
}

/// A boolean per row of a string-list column.
fn list_predicate(
    arg: &ColumnarValue,
    rows: usize,
    f: impl Fn(&[&str]) -> bool,
) -> Result<ColumnarValue> {
    let array = arg.to_array(rows)?;
    let DataType::List(_) = array.data_type() else {
        return exec_err!("expected a list of strings, got {}", array.data_type());
    };
    let list = array.as_list::<i32>();
    let mut b = BooleanBuilder::with_capacity(rows);
    for i in 0..list.len() {
        if list.is_null(i) {
            b.append_null();
            continue;
        }
        let values = cast(&list.value(i), &DataType::Utf8)?;
        let items: Vec<&str> = values.as_string::<i32>().iter().flatten().collect();
        b.append_value(f(&items));
    }
    Ok(ColumnarValue::Array(Arc::new(b.finish())))
}

fn is_interactive_client_column(arg: &ColumnarValue, rows: usize) -> Result<ColumnarValue> {
    let strings = as_strings(arg, rows)?;
    let mut b = BooleanBuilder::with_capacity(rows);
    for i in 0..strings.len() {
        b.append_value(strings.is_null(i) || is_interactive_client(strings.value(i)));
    }
    Ok(ColumnarValue::Array(Arc::new(b.finish())))
}

/// Control-plane identities doing their jobs: every `system:` user except anonymous, `system:admin`
/// and service accounts outside kube-system; kube-system service accounts; EKS `eks:` components;
/// AKS `aksService` (its control plane) and `nodeclient` (its kubelets); not `masterclient`,
/// the user of AKS's cluster-admin credentials, which people use.
pub fn is_system_principal(user: &str) -> bool {
    if let Some(sa) = user.strip_prefix("system:serviceaccount:") {
        return sa.starts_with("kube-system:");
    }
    if user.starts_with("system:") {
        return !matches!(
            user,
            "system:anonymous" | "system:admin" | "system:unauthenticated"
        );
    }
    user.starts_with("eks:") || matches!(user, "aksService" | "nodeclient" | "aks-support")
}

/// `component_images(user_name, namespace, images)`: the images as `namespace:repository`
/// ([`crate::image_ref::repository`]), for matching against the list of the cluster's own
/// components, when a workload identity wrote the object: a `system:` user (a service account,
/// a node, a controller) or a cloud's system principal. Null when a person (or an unknown user)
/// did: no component excuses a person.
fn component_images(args: &[ColumnarValue], rows: usize) -> Result<ColumnarValue> {
    use datafusion::arrow::array::ListBuilder;
    let users = as_strings(&args[0], rows)?;
    let namespaces = as_strings(&args[1], rows)?;
    let images = args[2].to_array(rows)?;
    let images = match images.data_type() {
        DataType::List(_) => images.as_list::<i32>().clone(),
        DataType::Null => {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from(
                &DataType::List(Arc::new(datafusion::arrow::datatypes::Field::new(
                    "item",
                    DataType::Utf8,
                    true,
                ))),
            )?));
        }
        other => return exec_err!("component_images() needs a list of images, got {other}"),
    };
    let mut b = ListBuilder::new(StringBuilder::new());
    for i in 0..images.len() {
        let workload_identity = !users.is_null(i)
            && (users.value(i).starts_with("system:") || is_system_principal(users.value(i)));
        if images.is_null(i) || !workload_identity {
            b.append(false);
            continue;
        }
        let namespace = if namespaces.is_null(i) {
            ""
        } else {
            namespaces.value(i)
        };
        let values = cast(&images.value(i), &DataType::Utf8)?;
        for image in values.as_string::<i32>().iter().flatten() {
            b.values().append_value(format!(
                "{namespace}:{}",
                crate::image_ref::repository(image)
            ));
        }
        b.append(true);
    }
    Ok(ColumnarValue::Array(Arc::new(b.finish())))
}

/// `credentials_in(json_text)`: where credentials are written in an object
/// ([`crate::credentials::credentials_in`]); an empty list when nowhere, null for null.
fn credentials_in_column(arg: &ColumnarValue, rows: usize) -> Result<ColumnarValue> {
    use datafusion::arrow::array::ListBuilder;
    let texts = as_strings(arg, rows)?;
    let mut b = ListBuilder::new(StringBuilder::new());
    for i in 0..texts.len() {
        if texts.is_null(i) {
            b.append(false);
            continue;
        }
        for place in crate::credentials::credentials_in(texts.value(i)) {
            b.values().append_value(place);
        }
        b.append(true);
    }
    Ok(ColumnarValue::Array(Arc::new(b.finish())))
}

/// [`is_system_principal`] of every value; an unknown user (null) is not a system principal:
/// an event stripped of its user by a pipeline is judged as a person's.
fn is_system_principal_column(arg: &ColumnarValue, rows: usize) -> Result<ColumnarValue> {
    let strings = as_strings(arg, rows)?;
    let mut b = BooleanBuilder::with_capacity(strings.len());
    for i in 0..strings.len() {
        b.append_value(!strings.is_null(i) && is_system_principal(strings.value(i)));
    }
    Ok(ColumnarValue::Array(Arc::new(b.finish())))
}

/// A person's tool or a script rather than a controller. Empty counts as interactive: controllers
/// built on client-go always send a user agent.
pub fn is_interactive_client(user_agent: &str) -> bool {
    const TOOLS: [&str; 16] = [
        "kubectl",
        "curl",
        "wget",
        "python",
        "go-http-client",
        "postmanruntime",
        "httpie",
        "node-fetch",
        "axios",
        "okhttp",
        "mozilla",
        "powershell",
        "java",
        "ruby",
        "libwww-perl",
        "k9s",
    ];
    let ua = user_agent.trim().to_ascii_lowercase();
    ua.is_empty() || TOOLS.iter().any(|t| ua.starts_with(t)) || crate::udf::is_offensive_tool(&ua)
}

/// User agents of offensive Kubernetes and network tooling.
pub fn is_offensive_tool(user_agent_lower: &str) -> bool {
    const TOOLS: [&str; 17] = [
        "peirates",
        "kube-hunter",
        "kubehunter",
        "kubesploit",
        "kdigger",
        "kubiscan",
        "kubestrike",
        "kubeletmein",
        "botb",
        "deepce",
        "amicontained",
        "nuclei",
        "sqlmap",
        "nikto",
        "masscan",
        "zgrab",
        "metasploit",
    ];
    TOOLS.iter().any(|t| user_agent_lower.contains(t))
        || user_agent_lower.starts_with("cdk/")
        || user_agent_lower.contains("nmap scripting engine")
}

/// Whether an image comes from one of the allowed registries. An entry without `/` names a
/// registry host (`ghcr.io`); an entry with `/` names a repository prefix (`ghcr.io/acme`).
fn image_allowed(image: &str, allowed: &[String]) -> bool {
    let registry = image_registry(image);
    let full = if image.split_once('/').is_some_and(|(first, _)| {
        first.contains('.') || first.contains(':') || first == "localhost"
    }) {
        image.to_string()
    } else if image.contains('/') {
        format!("docker.io/{image}")
    } else {
        format!("docker.io/library/{image}")
    };
    allowed.iter().any(|a| {
        let a = a.trim().trim_end_matches('/').to_ascii_lowercase();
        if a.contains('/') {
            full.to_ascii_lowercase().starts_with(&format!("{a}/"))
        } else {
            registry == a
        }
    })
}

/// Whether a granted `resource:verb` covers a wanted one (`*` in either part, `pods/*`).
fn grant_covers(grant: &str, wanted: &str) -> bool {
    let (Some((gr, gv)), Some((wr, wv))) = (grant.rsplit_once(':'), wanted.rsplit_once(':')) else {
        return false;
    };
    let resource_ok = gr == "*"
        || gr == wr
        || gr
            .strip_suffix("/*")
            .is_some_and(|base| wr.starts_with(base) && wr[base.len()..].starts_with('/'))
        || gr
            .strip_prefix("*/")
            .is_some_and(|sub| wr.ends_with(&format!("/{sub}")));
    resource_ok && (gv == "*" || gv == wv)
}

/// `/etc` is a prefix of `/etc` and `/etc/kubernetes`, not of `/etcd`; a prefix ending in `/`
/// or not starting with `/` is a plain string prefix.
fn path_has_prefix(value: &str, prefix: &str) -> bool {
    if !prefix.starts_with('/') || prefix.ends_with('/') {
        return value.starts_with(prefix);
    }
    let v = value.trim_end_matches('/');
    let v = if v.is_empty() { "/" } else { v };
    v == prefix || (v.starts_with(prefix) && v.as_bytes().get(prefix.len()) == Some(&b'/'))
}

fn top_level(text: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    match serde_json::from_str::<serde_json::Value>(text).ok()? {
        serde_json::Value::Object(m) => Some(m),
        _ => None,
    }
}

fn missing_keys(arg: &ColumnarValue, rows: usize, keys: &[String]) -> Result<ColumnarValue> {
    use datafusion::arrow::array::ListBuilder;
    let strings = as_strings(arg, rows)?;
    let mut b = ListBuilder::new(StringBuilder::new());
    for i in 0..strings.len() {
        let present = if strings.is_null(i) {
            None
        } else {
            top_level(strings.value(i))
        };
        for k in keys {
            if present
                .as_ref()
                .is_none_or(|m| m.get(k).is_none_or(serde_json::Value::is_null))
            {
                b.values().append_value(k);
            }
        }
        b.append(true);
    }
    Ok(ColumnarValue::Array(Arc::new(b.finish())))
}

fn json_get(args: &[ColumnarValue], rows: usize) -> Result<ColumnarValue> {
    let Some(path) = scalar_strings(&args[1..])? else {
        return Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)));
    };
    let segments: Vec<String> = if path.len() > 1 {
        path.iter().filter(|p| !p.is_empty()).cloned().collect()
    } else {
        path[0]
            .trim_start_matches("$.")
            .split('.')
            .map(String::from)
            .collect()
    };
    map_text(
        &args[0],
        rows,
        |text, b: &mut StringBuilder| match serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| walk(&v, &segments))
        {
            Some(serde_json::Value::String(s)) => b.append_value(s),
            Some(serde_json::Value::Null) | None => b.append_null(),
            Some(other) => b.append_value(other.to_string()),
        },
    )
}

fn walk(v: &serde_json::Value, segments: &[String]) -> Option<serde_json::Value> {
    let mut cur = v;
    for seg in segments {
        cur = match cur {
            serde_json::Value::Object(m) => m.get(seg)?,
            serde_json::Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur.clone())
}

/// The registry host of an image reference: the first path component when it looks like a
/// host (has a dot or a port, or is `localhost`), else Docker Hub.
pub fn image_registry(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first.to_ascii_lowercase()
        }
        _ => "docker.io".to_string(),
    }
}

/// Whether an image reference is pinned: a digest, or a tag other than `latest`.
pub fn image_is_pinned(image: &str) -> bool {
    if image.contains('@') {
        return true;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, tag)) => !tag.is_empty() && tag != "latest",
        None => false,
    }
}

/// (subdomain, registrable domain) of a DNS name: the last two labels, or three when the
/// second-level label is a public suffix of a country code (`co.uk`, `com.au`).
pub fn split_domain(name: &str) -> (&str, &str) {
    let name = name.trim_end_matches('.');
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() <= 2 {
        return ("", name);
    }
    let n = labels.len();
    let cc_suffix = labels[n - 1].len() == 2
        && matches!(
            labels[n - 2],
            "co" | "com" | "net" | "org" | "gov" | "ac" | "edu" | "ne" | "or"
        );
    let keep = if cc_suffix { 3 } else { 2 };
    if labels.len() <= keep {
        return ("", name);
    }
    let cut: usize = labels[..n - keep].iter().map(|l| l.len() + 1).sum();
    (&name[..cut - 1], &name[cut..])
}

/// Shannon entropy in bits per character.
pub fn shannon_entropy(s: &str) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_of_image_references() {
        assert_eq!(image_registry("nginx"), "docker.io");
        assert_eq!(image_registry("library/nginx:1.25"), "docker.io");
        assert_eq!(image_registry("ghcr.io/org/app:v1"), "ghcr.io");
        assert_eq!(
            image_registry("registry.local:5000/app"),
            "registry.local:5000"
        );
        assert_eq!(image_registry("localhost/app"), "localhost");
    }

    #[test]
    fn pinned_means_digest_or_explicit_non_latest_tag() {
        assert!(image_is_pinned("nginx:1.25.3"));
        assert!(image_is_pinned("nginx@sha256:0123"));
        assert!(!image_is_pinned("nginx"));
        assert!(!image_is_pinned("nginx:latest"));
        assert!(
            !image_is_pinned("registry.local:5000/app"),
            "a port is not a tag"
        );
    }

    #[test]
    fn ip_matching_handles_v4_v6_and_mapped_addresses() {
        let nets = vec![
            parse_net("10.0.0.0/8").unwrap(),
            parse_net("fd00::/8").unwrap(),
        ];
        assert!(ip_matches("10.1.2.3", &nets));
        assert!(ip_matches("::ffff:10.1.2.3", &nets));
        assert!(ip_matches("fd00::1", &nets));
        assert!(!ip_matches("203.0.113.5", &nets));
        assert!(!ip_matches("not-an-ip", &nets));
    }

    #[test]
    fn path_prefixes_respect_path_boundaries() {
        assert!(path_has_prefix("/etc/kubernetes", "/etc"));
        assert!(path_has_prefix("/etc", "/etc"));
        assert!(!path_has_prefix("/etcd-data", "/etc"));
        assert!(path_has_prefix("/", "/"));
        assert!(path_has_prefix(
            "/var/run/docker.sock",
            "/var/run/docker.sock"
        ));
    }

    #[test]
    fn system_principals_are_control_plane_components_only() {
        for u in [
            "system:node:ip-10-0-0-1",
            "system:kube-controller-manager",
            "system:serviceaccount:kube-system:replicaset-controller",
            "eks:addon-manager",
            "aksService",
        ] {
            assert!(is_system_principal(u), "{u}");
        }
        for u in [
            "system:anonymous",
            "system:admin",
            "system:serviceaccount:default:app",
            "alice@example.com",
            "kubernetes-admin",
            // AKS's cluster-admin credentials, in people's hands.
            "masterclient",
        ] {
            assert!(!is_system_principal(u), "{u}");
        }
    }

    #[test]
    fn interactive_clients_and_offensive_tools() {
        assert!(is_interactive_client(
            "kubectl/v1.29.2 (linux/amd64) kubernetes/4b8e819"
        ));
        assert!(is_interactive_client("curl/8.5.0"));
        assert!(is_interactive_client(""));
        assert!(!is_interactive_client(
            "kube-controller-manager/v1.29.2 (linux/amd64) kubernetes/4b8e819/system:serviceaccount:kube-system:replicaset-controller"
        ));
        assert!(is_offensive_tool("peirates/v1.1.0"));
        assert!(!is_offensive_tool("kubectl/v1.29.2"));
    }

    #[test]
    fn allowed_registries_by_host_or_repository_prefix() {
        let allowed = vec![
            "ghcr.io/acme".to_string(),
            "registry.corp".to_string(),
            "docker.io/library".to_string(),
        ];
        assert!(image_allowed("ghcr.io/acme/app:1", &allowed));
        assert!(!image_allowed("ghcr.io/evil/app:1", &allowed));
        assert!(image_allowed("registry.corp/x/y@sha256:00", &allowed));
        assert!(
            image_allowed("nginx:1.25", &allowed),
            "official images are docker.io/library"
        );
        assert!(!image_allowed("evil/miner", &allowed));
    }

    #[test]
    fn grants_cover_wildcards_and_subresources() {
        assert!(grant_covers("*:*", "secrets:create"));
        assert!(grant_covers("secrets:*", "secrets:create"));
        assert!(grant_covers("pods/*:create", "pods/exec:create"));
        assert!(grant_covers("*/exec:create", "pods/exec:create"));
        assert!(!grant_covers("pods:create", "pods/exec:create"));
        assert!(!grant_covers("secrets:get", "secrets:create"));
    }

    #[test]
    fn registered_domains_and_subdomains() {
        assert_eq!(split_domain("a.b.example.com."), ("a.b", "example.com"));
        assert_eq!(split_domain("x.evil.co.uk"), ("x", "evil.co.uk"));
        assert_eq!(split_domain("example.com"), ("", "example.com"));
        assert_eq!(split_domain("localhost"), ("", "localhost"));
    }

    #[test]
    fn entropy_of_random_labels_is_higher_than_of_words() {
        assert!(shannon_entropy("x7f3kq9zp2m8v1c4") > shannon_entropy("kubernetes"));
        assert_eq!(shannon_entropy(""), 0.0);
    }
}
