//! The native `audit.k8s.io` Event (v1 and v1beta1), as the apiserver's log and webhook
//! backends write it, and the envelopes of the managed clouds that carry it.
//!
//! Everything is deserialised in one pass into borrowed, typed fields; nested objects that no
//! column needs are skipped, and the request/response objects are kept as raw JSON text.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::BTreeSet;
use std::fmt;
use std::marker::PhantomData;
use std::sync::LazyLock;

use memchr::memmem::Finder;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::json_reader::{self, GiveUp, JsonReader, Member, Plain, Step, first, has_control_bytes};
use super::row::IdentityText;

/// The union of the top-level fields of every shape audithound reads: a native Event, an
/// EventList, an AKS record or Event Hub batch, a GKE LogEntry, a CloudWatch Logs envelope or an
/// exported CloudWatch event. Which fields are present tells the shape. Top-level keys that none
/// of these shapes has are kept in `unknown` (raw), so that rules can still reach them.
#[derive(Debug, Default)]
pub(crate) struct Envelope<'a> {
    pub kind: Option<Cow<'a, str>>,
    pub level: Option<Cow<'a, str>>,
    pub audit_id: Option<Cow<'a, str>>,
    pub stage: Option<Cow<'a, str>>,
    pub request_uri: Option<Cow<'a, str>>,
    pub verb: Option<Cow<'a, str>>,
    pub user: Option<UserInfo<'a>>,
    pub impersonated_user: Option<UserInfo<'a>>,
    pub source_ips: Option<Vec<Cow<'a, str>>>,
    pub user_agent: Option<Cow<'a, str>>,
    pub object_ref: Option<ObjectRef<'a>>,
    pub response_status: Option<ResponseStatus<'a>>,
    pub request_object: Option<&'a str>,
    pub response_object: Option<&'a str>,
    /// Raw JSON (a string, or a number that log pipelines write instead).
    pub request_received_timestamp: Option<&'a str>,
    /// Raw JSON (a string, or a number that log pipelines write instead).
    pub stage_timestamp: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub metadata: Option<EventMetadata<'a>>,
    pub annotations: Option<&'a str>,
    pub items: Option<&'a str>,
    pub records: Option<&'a str>,
    pub properties: Option<&'a str>,
    pub category: Option<Cow<'a, str>>,
    pub resource_id: Option<Cow<'a, str>>,
    pub proto_payload: Option<&'a str>,
    pub resource: Option<&'a str>,
    pub labels: Option<&'a str>,
    pub operation: Option<&'a str>,
    pub insert_id: Option<Cow<'a, str>>,
    pub message_type: Option<Cow<'a, str>>,
    pub log_group: Option<Cow<'a, str>>,
    pub log_events: Option<&'a str>,
    pub message: Option<&'a str>,
    pub unknown: Vec<(Cow<'a, str>, &'a str)>,
    /// The known annotations, when the reader found them while reading `annotations` (else
    /// they are looked up in its text).
    pub known_annotations: Option<KnownAnnotations<'a>>,
    /// The text from the value of `user` to the end of the value of `userAgent` less the
    /// value of `sourceIPs`, when those members came one after the other with only
    /// `impersonatedUser` and `sourceIPs` between them and none of the four came elsewhere (as
    /// the apiserver writes them): every column taken from `user`, `impersonatedUser` and
    /// `userAgent` is then a function of this text.
    pub identity: Option<IdentityText<'a>>,
}

/// A string that borrows from the input when it has no escapes (serde's own `Cow` does not).
#[derive(Deserialize)]
#[serde(transparent)]
struct BorrowCow<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Envelope<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EnvelopeVisitor<'a>(PhantomData<&'a ()>);

        impl<'de: 'a, 'a> Visitor<'de> for EnvelopeVisitor<'a> {
            type Value = Envelope<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object (an audit event or a log record carrying one)")
            }

            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Envelope<'a>, M::Error> {
                let mut env = Envelope::default();
                while let Some(BorrowCow(key)) = map.next_key::<BorrowCow<'a>>()? {
                    let Some(field) = Field::named(&key) else {
                        env.unknown
                            .push((key, map.next_value::<&RawValue>()?.get()));
                        continue;
                    };
                    fn text<'de: 'a, 'a, M: MapAccess<'de>>(
                        map: &mut M,
                    ) -> Result<Option<Cow<'a, str>>, M::Error> {
                        Ok(map.next_value::<Option<BorrowCow<'a>>>()?.map(|b| b.0))
                    }
                    match field {
                        Field::Kind => env.kind = text(&mut map)?,
                        Field::ApiVersion => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                        Field::Level => env.level = text(&mut map)?,
                        Field::AuditId => env.audit_id = text(&mut map)?,
                        Field::Stage => env.stage = text(&mut map)?,
                        Field::RequestUri => env.request_uri = text(&mut map)?,
                        Field::Verb => env.verb = text(&mut map)?,
                        Field::User => env.user = map.next_value()?,
                        Field::ImpersonatedUser => env.impersonated_user = map.next_value()?,
                        Field::SourceIps => env.source_ips = map.next_value()?,
                        Field::UserAgent => env.user_agent = text(&mut map)?,
                        Field::ObjectRef => env.object_ref = map.next_value()?,
                        Field::ResponseStatus => env.response_status = map.next_value()?,
                        Field::RequestObject => env.request_object = next_raw(&mut map)?,
                        Field::ResponseObject => env.response_object = next_raw(&mut map)?,
                        Field::RequestReceivedTimestamp => {
                            env.request_received_timestamp = next_raw(&mut map)?
                        }
                        Field::StageTimestamp => env.stage_timestamp = next_raw(&mut map)?,
                        Field::Timestamp => env.timestamp = next_raw(&mut map)?,
                        Field::Metadata => env.metadata = map.next_value()?,
                        Field::Annotations => env.annotations = next_raw(&mut map)?,
                        Field::Items => env.items = next_raw(&mut map)?,
                        Field::Records => env.records = next_raw(&mut map)?,
                        Field::Properties => env.properties = next_raw(&mut map)?,
                        Field::Category => env.category = text(&mut map)?,
                        Field::ResourceId => env.resource_id = text(&mut map)?,
                        Field::ProtoPayload => env.proto_payload = next_raw(&mut map)?,
                        Field::Resource => env.resource = next_raw(&mut map)?,
                        Field::Labels => env.labels = next_raw(&mut map)?,
                        Field::Operation => env.operation = next_raw(&mut map)?,
                        Field::InsertId => env.insert_id = text(&mut map)?,
                        Field::MessageType => env.message_type = text(&mut map)?,
                        Field::LogGroup => env.log_group = text(&mut map)?,
                        Field::LogEvents => env.log_events = next_raw(&mut map)?,
                        Field::Message => env.message = next_raw(&mut map)?,
                    }
                }
                Ok(env)
            }
        }

        deserializer.deserialize_map(EnvelopeVisitor(PhantomData))
    }
}

/// The JSON text of a member that may be null (null reads as absent, as for any `Option`).
fn next_raw<'de, M: MapAccess<'de>>(map: &mut M) -> Result<Option<&'de str>, M::Error> {
    Ok(map
        .next_value::<Option<&'de RawValue>>()?
        .map(RawValue::get))
}

/// What the audit-specific reader decodes besides what every event needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Wanted {
    /// The authorization reason annotation: long, escaped in nearly every event (so decoded
    /// into a new string), and read by no built-in rule. Unwanted, it is checked and skipped.
    pub reason: bool,
}

impl Default for Wanted {
    fn default() -> Self {
        Wanted { reason: true }
    }
}

impl Wanted {
    /// What to decode when only the audit columns in `kept` are filled; `None` keeps them all.
    pub(crate) fn keeping(kept: Option<&BTreeSet<String>>) -> Self {
        Wanted {
            reason: kept.is_none_or(|kept| kept.contains("reason")),
        }
    }
}

impl<'a> Envelope<'a> {
    /// Parses one JSON record. Compact records go through the audit-specific reader; anything
    /// it gives up on (pretty-printed records, odd numbers, errors) through serde_json, whose
    /// result and error messages stand (and which decodes everything).
    pub(crate) fn parse(
        text: &'a str,
        wanted: Wanted,
    ) -> Result<Box<Envelope<'a>>, serde_json::Error> {
        if !has_control_bytes(text)
            && let Ok(env) = Self::read_all(text, wanted)
        {
            return Ok(env);
        }
        serde_json::from_str(text).map(Box::new)
    }

    /// [`Self::parse`] of a record already known to be printable ASCII.
    pub(crate) fn parse_plain(
        text: Plain<'a>,
        wanted: Wanted,
    ) -> Result<Box<Envelope<'a>>, serde_json::Error> {
        Self::read_all(text.text(), wanted)
            .or_else(|GiveUp| serde_json::from_str(text.text()).map(Box::new))
    }

    /// The whole record through the fast reader (`text` has no control bytes).
    fn read_all(text: &'a str, wanted: Wanted) -> Step<Box<Envelope<'a>>> {
        let mut reader = JsonReader::new(text);
        let env = Self::read(&mut reader, wanted)?;
        reader.end()?;
        Ok(env)
    }

    /// The envelope as the serde visitor above reads it, member for member.
    fn read(r: &mut JsonReader<'a>, wanted: Wanted) -> Step<Box<Envelope<'a>>> {
        // On the heap from the start: an envelope is a kilobyte, and it would otherwise be
        // copied at every step from here to the row it becomes.
        let mut env = Box::<Envelope<'a>>::default();
        // Where in the apiserver's order of members the next one is expected.
        let next = Cell::new(0usize);
        let mut identity = IdentityRun::default();
        let is_object = r.object_predicting(
            |ahead| {
                // The next member in order, or one of the two after it (optional members such as
                // `impersonatedUser` or `requestObject` are often left out).
                let from = next.get();
                EVENT_ORDER
                    .get(from..)?
                    .iter()
                    .take(3)
                    .find_map(|(field, quoted)| {
                        json_reader::starts_with(ahead, quoted).then_some((*field, quoted.len()))
                    })
            },
            |r, member| {
                let field = match member {
                    Member::Known(field) => field,
                    Member::Named(_, name) => match Field::named(&name) {
                        Some(field) => field,
                        None => {
                            identity.before(None, r.position());
                            let value = r.raw()?;
                            env.unknown.push((name, value));
                            return Ok(());
                        }
                    },
                };
                // The members in order are the first variants, in that order (a test checks).
                if (field as usize) < EVENT_ORDER.len() {
                    next.set(field as usize + 1);
                }
                identity.before(Some(field), r.position());
                match field {
                    Field::Kind => env.kind = r.opt_string()?,
                    Field::ApiVersion => r.skip_value()?,
                    Field::Level => env.level = r.opt_string()?,
                    Field::AuditId => env.audit_id = r.opt_string()?,
                    Field::Stage => env.stage = r.opt_string()?,
                    Field::RequestUri => env.request_uri = r.opt_string()?,
                    Field::Verb => env.verb = r.opt_string()?,
                    Field::User => env.user = UserInfo::read(r)?,
                    Field::ImpersonatedUser => env.impersonated_user = UserInfo::read(r)?,
                    Field::SourceIps => env.source_ips = r.opt_strings()?,
                    Field::UserAgent => env.user_agent = r.opt_string()?,
                    Field::ObjectRef => ObjectRef::read_into(r, &mut env.object_ref)?,
                    Field::ResponseStatus => env.response_status = ResponseStatus::read(r)?,
                    Field::RequestObject => env.request_object = r.opt_raw()?,
                    Field::ResponseObject => env.response_object = r.opt_raw()?,
                    Field::RequestReceivedTimestamp => {
                        env.request_received_timestamp = r.opt_raw()?
                    }
                    Field::StageTimestamp => env.stage_timestamp = r.opt_raw()?,
                    Field::Annotations => KnownAnnotations::read_into(
                        r,
                        wanted.reason,
                        &mut env.annotations,
                        &mut env.known_annotations,
                    )?,
                    Field::Timestamp => env.timestamp = r.opt_raw()?,
                    Field::Metadata => env.metadata = EventMetadata::read(r)?,
                    Field::Items => env.items = r.opt_raw()?,
                    Field::Records => env.records = r.opt_raw()?,
                    Field::Properties => env.properties = r.opt_raw()?,
                    Field::Category => env.category = r.opt_string()?,
                    Field::ResourceId => env.resource_id = r.opt_string()?,
                    Field::ProtoPayload => env.proto_payload = r.opt_raw()?,
                    Field::Resource => env.resource = r.opt_raw()?,
                    Field::Labels => env.labels = r.opt_raw()?,
                    Field::Operation => env.operation = r.opt_raw()?,
                    Field::InsertId => env.insert_id = r.opt_string()?,
                    Field::MessageType => env.message_type = r.opt_string()?,
                    Field::LogGroup => env.log_group = r.opt_string()?,
                    Field::LogEvents => env.log_events = r.opt_raw()?,
                    Field::Message => env.message = r.opt_raw()?,
                }
                identity.after(field, r.position());
                Ok(())
            },
        )?;
        env.identity = identity.text(r);
        // A top-level `null` is not an object: serde_json says what it is.
        if is_object { Ok(env) } else { Err(GiveUp) }
    }
}

/// The top-level members that [`Envelope`] reads (the same names as its serde visitor); those
/// of [`EVENT_ORDER`] come first, in its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Kind,
    ApiVersion,
    Level,
    AuditId,
    Stage,
    RequestUri,
    Verb,
    User,
    ImpersonatedUser,
    SourceIps,
    UserAgent,
    ObjectRef,
    ResponseStatus,
    RequestObject,
    ResponseObject,
    RequestReceivedTimestamp,
    StageTimestamp,
    Annotations,
    Timestamp,
    Metadata,
    Items,
    Records,
    Properties,
    Category,
    ResourceId,
    ProtoPayload,
    Resource,
    Labels,
    Operation,
    InsertId,
    MessageType,
    LogGroup,
    LogEvents,
    Message,
}

/// The members of an Event in the order the apiserver writes them (its Go struct's order),
/// each with its name as written: in quotes, with its colon.
const EVENT_ORDER: [(Field, &[u8]); 18] = [
    (Field::Kind, b"\"kind\":"),
    (Field::ApiVersion, b"\"apiVersion\":"),
    (Field::Level, b"\"level\":"),
    (Field::AuditId, b"\"auditID\":"),
    (Field::Stage, b"\"stage\":"),
    (Field::RequestUri, b"\"requestURI\":"),
    (Field::Verb, b"\"verb\":"),
    (Field::User, b"\"user\":"),
    (Field::ImpersonatedUser, b"\"impersonatedUser\":"),
    (Field::SourceIps, b"\"sourceIPs\":"),
    (Field::UserAgent, b"\"userAgent\":"),
    (Field::ObjectRef, b"\"objectRef\":"),
    (Field::ResponseStatus, b"\"responseStatus\":"),
    (Field::RequestObject, b"\"requestObject\":"),
    (Field::ResponseObject, b"\"responseObject\":"),
    (
        Field::RequestReceivedTimestamp,
        b"\"requestReceivedTimestamp\":",
    ),
    (Field::StageTimestamp, b"\"stageTimestamp\":"),
    (Field::Annotations, b"\"annotations\":"),
];

impl Field {
    /// The member of this name (after unescaping), if the envelope reads it. Names are matched
    /// as written, and then regardless of case: data lakes lowercase column names
    /// (`objectref`, `requesturi`).
    fn named(name: &str) -> Option<Field> {
        Self::exactly(name).or_else(|| {
            if name.bytes().any(|b| b.is_ascii_uppercase()) {
                Self::lowercase(&name.to_ascii_lowercase())
            } else {
                Self::lowercase(name)
            }
        })
    }

    fn exactly(name: &str) -> Option<Field> {
        Some(match name {
            "kind" => Field::Kind,
            "apiVersion" => Field::ApiVersion,
            "level" => Field::Level,
            "auditID" => Field::AuditId,
            "stage" => Field::Stage,
            "requestURI" => Field::RequestUri,
            "verb" => Field::Verb,
            "user" => Field::User,
            "impersonatedUser" => Field::ImpersonatedUser,
            "sourceIPs" => Field::SourceIps,
            "userAgent" => Field::UserAgent,
            "objectRef" => Field::ObjectRef,
            "responseStatus" => Field::ResponseStatus,
            "requestObject" => Field::RequestObject,
            "responseObject" => Field::ResponseObject,
            "requestReceivedTimestamp" => Field::RequestReceivedTimestamp,
            "stageTimestamp" => Field::StageTimestamp,
            "annotations" => Field::Annotations,
            "timestamp" => Field::Timestamp,
            "metadata" => Field::Metadata,
            "items" => Field::Items,
            "records" => Field::Records,
            "properties" => Field::Properties,
            "category" => Field::Category,
            "resourceId" | "resourceID" => Field::ResourceId,
            "protoPayload" => Field::ProtoPayload,
            "resource" => Field::Resource,
            "labels" => Field::Labels,
            "operation" => Field::Operation,
            "insertId" => Field::InsertId,
            "messageType" => Field::MessageType,
            "logGroup" => Field::LogGroup,
            "logEvents" => Field::LogEvents,
            "message" => Field::Message,
            _ => return None,
        })
    }

    /// The member whose name, lowercased, is `lower` (names that are lowercase already were
    /// matched by [`Self::exactly`]).
    fn lowercase(lower: &str) -> Option<Field> {
        Some(match lower {
            "apiversion" => Field::ApiVersion,
            "auditid" => Field::AuditId,
            "requesturi" => Field::RequestUri,
            "impersonateduser" => Field::ImpersonatedUser,
            "sourceips" => Field::SourceIps,
            "useragent" => Field::UserAgent,
            "objectref" => Field::ObjectRef,
            "responsestatus" => Field::ResponseStatus,
            "requestobject" => Field::RequestObject,
            "responseobject" => Field::ResponseObject,
            "requestreceivedtimestamp" => Field::RequestReceivedTimestamp,
            "stagetimestamp" => Field::StageTimestamp,
            "resourceid" => Field::ResourceId,
            "protopayload" => Field::ProtoPayload,
            "insertid" => Field::InsertId,
            "messagetype" => Field::MessageType,
            "loggroup" => Field::LogGroup,
            "logevents" => Field::LogEvents,
            other => return Self::exactly(other),
        })
    }
}

#[derive(Debug, Deserialize, Default)]
pub(crate) struct UserInfo<'a> {
    #[serde(borrow)]
    pub username: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub groups: Option<Vec<Cow<'a, str>>>,
}

impl<'a> UserInfo<'a> {
    fn read(r: &mut JsonReader<'a>) -> Step<Option<UserInfo<'a>>> {
        let mut user = UserInfo::default();
        let mut seen = [false; 2];
        // `username` and `groups` are recognised in the bytes ahead, as written (an apiserver
        // writes them without escapes); other names are read.
        let read = r.object_predicting(predictor(&USER_MEMBERS), |r, member| {
            let Some(which) = slot_of(&USER_MEMBERS, member) else {
                return r.skip_value();
            };
            first(&mut seen[which])?;
            if which == 0 {
                user.username = r.opt_string()?;
            } else {
                user.groups = r.opt_strings()?;
            }
            Ok(())
        })?;
        Ok(read.then_some(user))
    }
}

/// Where an event's identity members (`user`, `impersonatedUser`, `sourceIPs`, `userAgent`)
/// lie, followed as the members are read: their text, when they come one after the other from
/// `user` to `userAgent` and none of them comes elsewhere (as the apiserver writes them), less
/// the value of `sourceIPs` ([`IdentityText`]).
#[derive(Default)]
struct IdentityRun {
    /// The run being read: where it started and how many members it has so far.
    open: Option<(usize, u32)>,
    /// Identity members read in all.
    members: u32,
    /// Where the value of the open run's `sourceIPs` starts and ends (the last one read).
    addresses: Option<(usize, usize)>,
    /// The last finished run.
    done: Option<FinishedRun>,
}

/// A run of identity members from `user` to `userAgent`, read to its end.
#[derive(Clone, Copy)]
struct FinishedRun {
    /// Where it starts and ends.
    from: usize,
    to: usize,
    /// Where the value of its (last) `sourceIPs` starts and ends.
    addresses: Option<(usize, usize)>,
    /// Identity members in it.
    members: u32,
}

impl IdentityRun {
    fn is_identity(field: Field) -> bool {
        matches!(
            field,
            Field::User | Field::ImpersonatedUser | Field::SourceIps | Field::UserAgent
        )
    }

    /// Before the value of a member (`None`: a member with no field), which starts at `at`.
    fn before(&mut self, field: Option<Field>, at: usize) {
        match field {
            Some(Field::User) => {
                self.open = Some((at, 0));
                self.addresses = None;
            }
            Some(Field::SourceIps) => self.addresses = Some((at, at)),
            Some(field) if Self::is_identity(field) => {}
            _ => self.open = None,
        }
    }

    /// After the value of `field`, which ends at `at`.
    fn after(&mut self, field: Field, at: usize) {
        if !Self::is_identity(field) {
            return;
        }
        self.members += 1;
        if field == Field::SourceIps
            && let Some((_, end)) = self.addresses.as_mut()
        {
            *end = at;
        }
        if let Some((from, members)) = self.open.as_mut() {
            *members += 1;
            if field == Field::UserAgent {
                self.done = Some(FinishedRun {
                    from: *from,
                    to: at,
                    addresses: self.addresses,
                    members: *members,
                });
                self.open = None;
            }
        }
    }

    /// The run's text, when it holds every identity member of the event.
    fn text<'a>(&self, r: &JsonReader<'a>) -> Option<IdentityText<'a>> {
        let FinishedRun {
            from,
            to,
            addresses,
            members,
        } = self.done?;
        if members != self.members {
            return None;
        }
        // A range out of order (not met: the addresses are forgotten when a run starts) reads
        // as no text, and the screen then looks the values up one by one.
        match addresses {
            Some((start, end)) => Some(IdentityText {
                head: r.text_between(from, start)?,
                tail: r.text_between(end, to)?,
            }),
            None => Some(IdentityText {
                head: r.text_between(from, to)?,
                tail: "",
            }),
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ObjectRef<'a> {
    #[serde(borrow)]
    pub resource: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub namespace: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub api_group: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub api_version: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub subresource: Option<Cow<'a, str>>,
}

impl<'a> ObjectRef<'a> {
    /// Reads an `objectRef` (or `null`) into `into`, where it is to stay: built elsewhere, its
    /// 144 bytes were copied twice on the way there, for every event.
    fn read_into(r: &mut JsonReader<'a>, into: &mut Option<ObjectRef<'a>>) -> Step<()> {
        let obj = into.insert(ObjectRef::default());
        let mut seen = [false; 6];
        // The members with columns are recognised in the bytes ahead, as written; other names
        // (and names written with escapes) are read.
        let read = r.object_predicting(predictor(&OBJECT_REF_MEMBERS), |r, member| {
            let Some(which) = slot_of(&OBJECT_REF_MEMBERS, member) else {
                return r.skip_value();
            };
            let slot = match which {
                0 => &mut obj.resource,
                1 => &mut obj.namespace,
                2 => &mut obj.name,
                3 => &mut obj.api_group,
                4 => &mut obj.api_version,
                _ => &mut obj.subresource,
            };
            first(&mut seen[which])?;
            *slot = r.opt_string()?;
            Ok(())
        })?;
        if !read {
            *into = None;
        }
        Ok(())
    }
}

/// The members of `user` that have columns, quoted and followed by a colon, in the order of
/// `UserInfo::read`'s slots.
const USER_MEMBERS: [&[u8]; 2] = [b"\"username\":", b"\"groups\":"];

/// Recognises which of `members` (each quoted and followed by a colon) the bytes ahead start
/// with, for [`JsonReader::object_predicting`]: its index and length.
#[inline(always)]
fn predictor<const N: usize>(
    members: &'static [&'static [u8]; N],
) -> impl Fn(&[u8]) -> Option<(usize, usize)> {
    |ahead| {
        members
            .iter()
            .position(|quoted| json_reader::starts_with(ahead, quoted))
            .map(|i| (i, members[i].len()))
    }
}

/// The index in `members` of a member recognised ahead or read by name (unescaped); `None` for
/// a member with another name.
#[inline(always)]
fn slot_of<const N: usize>(members: &[&[u8]; N], member: Member<'_, usize>) -> Option<usize> {
    match member {
        Member::Known(which) => Some(which),
        Member::Named(_, name) => members
            .iter()
            .position(|quoted| quoted_name(quoted) == name.as_bytes()),
    }
}

/// The members of an `objectRef` that have columns, quoted and followed by a colon, in the
/// order of `ObjectRef::read_into`'s slots.
const OBJECT_REF_MEMBERS: [&[u8]; 6] = [
    b"\"resource\":",
    b"\"namespace\":",
    b"\"name\":",
    b"\"apiGroup\":",
    b"\"apiVersion\":",
    b"\"subresource\":",
];

#[derive(Debug, Deserialize, Default)]
pub(crate) struct ResponseStatus<'a> {
    pub code: Option<i32>,
    #[serde(borrow)]
    pub reason: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub message: Option<Cow<'a, str>>,
}

impl<'a> ResponseStatus<'a> {
    fn read(r: &mut JsonReader<'a>) -> Step<Option<ResponseStatus<'a>>> {
        let mut status = ResponseStatus::default();
        let mut seen = [false; 3];
        let read = r.object(|r, _, key| {
            match key.as_ref() {
                "code" => {
                    first(&mut seen[0])?;
                    status.code = r.opt_count()?;
                }
                "reason" => {
                    first(&mut seen[1])?;
                    status.reason = r.opt_string()?;
                }
                "message" => {
                    first(&mut seen[2])?;
                    status.message = r.opt_string()?;
                }
                _ => r.skip_value()?,
            }
            Ok(())
        })?;
        Ok(read.then_some(status))
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EventMetadata<'a> {
    #[serde(borrow)]
    pub creation_timestamp: Option<Cow<'a, str>>,
}

impl<'a> EventMetadata<'a> {
    fn read(r: &mut JsonReader<'a>) -> Step<Option<EventMetadata<'a>>> {
        let mut meta = EventMetadata::default();
        let mut seen = false;
        let read = r.object(|r, _, key| {
            if key == "creationTimestamp" {
                first(&mut seen)?;
                meta.creation_timestamp = r.opt_string()?;
                Ok(())
            } else {
                r.skip_value()
            }
        })?;
        Ok(read.then_some(meta))
    }
}

/// The annotations of an Event that have columns of their own.
#[derive(Debug, Deserialize, Default)]
pub(crate) struct KnownAnnotations<'a> {
    #[serde(rename = "authorization.k8s.io/decision", borrow)]
    pub decision: Option<Cow<'a, str>>,
    #[serde(rename = "authorization.k8s.io/reason", borrow)]
    pub reason: Option<Cow<'a, str>>,
    #[serde(rename = "pod-security.kubernetes.io/audit-violations", borrow)]
    pub pod_security_violations: Option<Cow<'a, str>>,
}

/// The names of the annotations that have columns (decision, reason, Pod Security violations,
/// in the order of `KnownAnnotations::read_into`'s slots), quoted and followed by a colon, as an
/// apiserver writes a member (it writes the map's keys in order, these first).
const ANNOTATION_MEMBERS: [&[u8]; 3] = [
    b"\"authorization.k8s.io/decision\":",
    b"\"authorization.k8s.io/reason\":",
    b"\"pod-security.kubernetes.io/audit-violations\":",
];

/// The name inside `"name":`.
fn quoted_name(member: &[u8]) -> &[u8] {
    member.get(1..member.len().saturating_sub(2)).unwrap_or(&[])
}

/// Searchers for the names of the annotations that have columns (built once: building one
/// costs more than searching an event's annotations with it).
static ANNOTATION_FINDERS: LazyLock<[Finder<'static>; 3]> =
    LazyLock::new(|| ANNOTATION_MEMBERS.map(|quoted| Finder::new(quoted_name(quoted))));

impl<'a> KnownAnnotations<'a> {
    /// The known annotations of an Event's `annotations` object, given as its raw JSON text.
    /// Each key is looked up in the text instead of parsing the whole map a second time: nearly
    /// every event carries annotations, so a second parse would be a real share of decoding.
    pub(crate) fn find(raw: &'a str) -> KnownAnnotations<'a> {
        let [decision, reason, violations] = &*ANNOTATION_FINDERS;
        KnownAnnotations {
            decision: string_member(raw, decision),
            reason: string_member(raw, reason),
            pod_security_violations: string_member(raw, violations),
        }
    }

    /// An Event's `annotations` (or `null`) as JSON text, with the known ones found while
    /// reading it. Like [`Self::find`], a known name counts only as written without escapes,
    /// its first string value wins, and a value that is not text counts as absent; unlike
    /// `find`, only the object's own members are considered (annotations are a map of strings,
    /// so this differs only for records no apiserver writes). A value that is not an object is
    /// returned without known annotations, for `find` to search.
    /// The reason is left out unless `reason` is true. Both are read into the envelope's
    /// fields, `raw` and `known`, where they are to stay (built elsewhere, they were copied
    /// there for every event).
    fn read_into(
        r: &mut JsonReader<'a>,
        reason: bool,
        raw: &mut Option<&'a str>,
        known: &mut Option<KnownAnnotations<'a>>,
    ) -> Step<()> {
        let found = known.insert(KnownAnnotations::default());
        let mut is_object = false;
        *raw = r.opt_raw_reading_objects(|r| {
            is_object = true;
            // The known names are recognised in the bytes ahead; any other name is read and,
            // as `find` does, compared as written (unlike `slot_of`, which unescapes).
            r.object_predicting(predictor(&ANNOTATION_MEMBERS), |r, member| {
                let which = match member {
                    Member::Known(which) => Some(which),
                    Member::Named(raw, _) => ANNOTATION_MEMBERS
                        .iter()
                        .position(|quoted| quoted_name(quoted) == raw.as_bytes()),
                };
                let slot = match which {
                    Some(0) => &mut found.decision,
                    Some(1) if reason => &mut found.reason,
                    Some(2) => &mut found.pod_security_violations,
                    _ => return r.skip_value(),
                };
                if slot.is_none() && r.peek_is_string()? {
                    *slot = Some(r.string()?);
                    Ok(())
                } else {
                    r.skip_value()
                }
            })
            .map(drop)
        })?;
        if !is_object {
            *known = None;
        }
        Ok(())
    }
}

/// The string value of the member whose name `key` searches for (a name with no characters
/// JSON escapes) in the JSON object `raw`, which must be valid JSON. In valid JSON, an unescaped
/// quote, the name and a quote, followed by a colon, can only be a member name, so mentions of
/// the name inside values are passed over. A value that is not a string (null, say) counts as
/// absent.
fn string_member<'a>(raw: &'a str, key: &Finder<'_>) -> Option<Cow<'a, str>> {
    let bytes = raw.as_bytes();
    for at in key.find_iter(bytes) {
        let end = at + key.needle().len();
        if at == 0 || bytes[at - 1] != b'"' || bytes.get(end) != Some(&b'"') {
            continue;
        }
        let backslashes = bytes[..at - 1]
            .iter()
            .rev()
            .take_while(|b| **b == b'\\')
            .count();
        if backslashes % 2 == 1 {
            continue;
        }
        let Some(value) = raw[end + 1..].trim_start().strip_prefix(':') else {
            continue;
        };
        return json_string(value.trim_start());
    }
    None
}

/// The JSON string at the start of `text` (from its opening quote), unescaped, borrowed when it
/// has no escapes; `None` when `text` does not start with a string. `text` comes from JSON that
/// serde_json has already read whole, so the string is well formed; a lone UTF-16 surrogate
/// escape becomes U+FFFD. (serde_json's own string reader is made for untrusted input and
/// copies through a scratch buffer, which costs more than the search that found the string.)
fn json_string(text: &str) -> Option<Cow<'_, str>> {
    let mut rest = text.strip_prefix('"')?;
    // Filled from the first escape on; until then the string is a slice of `text`.
    let mut unescaped: Option<String> = None;
    loop {
        let at = memchr::memchr2(b'"', b'\\', rest.as_bytes())?;
        if rest.as_bytes()[at] == b'"' {
            return Some(match unescaped {
                None => Cow::Borrowed(&rest[..at]),
                Some(mut out) => {
                    out.push_str(&rest[..at]);
                    Cow::Owned(out)
                }
            });
        }
        let out = unescaped.get_or_insert_with(|| String::with_capacity(at + 32));
        out.push_str(&rest[..at]);
        let escape = *rest.as_bytes().get(at + 1)?;
        // Both bytes are ASCII, so the slice starts on a character boundary.
        rest = &rest[at + 2..];
        match escape {
            b'"' => out.push('"'),
            b'\\' => out.push('\\'),
            b'/' => out.push('/'),
            b'b' => out.push('\u{8}'),
            b'f' => out.push('\u{c}'),
            b'n' => out.push('\n'),
            b'r' => out.push('\r'),
            b't' => out.push('\t'),
            b'u' => {
                let (c, used) = unicode_escape(rest)?;
                out.push(c);
                rest = &rest[used..];
            }
            _ => return None,
        }
    }
}

/// The character of a `\u` escape whose four hex digits start `rest` (joined with a second
/// escape when the first is a leading surrogate), and how many bytes of `rest` it used.
fn unicode_escape(rest: &str) -> Option<(char, usize)> {
    let hex = |s: &str| -> Option<u32> {
        let digits = s.get(..4)?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(digits, 16).ok()
    };
    let high = hex(rest)?;
    if (0xD800..0xDC00).contains(&high) {
        let low = rest
            .get(4..)
            .and_then(|r| r.strip_prefix("\\u"))
            .and_then(hex)
            .filter(|low| (0xDC00..0xE000).contains(low));
        if let Some(low) = low {
            let c = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
            return Some((char::from_u32(c).unwrap_or('\u{FFFD}'), 10));
        }
    }
    Some((char::from_u32(high).unwrap_or('\u{FFFD}'), 4))
}

/// A JSON value that is null or absent, as serde_json's raw values show it.
pub(crate) fn is_null(raw: &str) -> bool {
    raw.trim() == "null"
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every JSON line of the fixtures, and the events inside the lists and batches among them.
    fn fixture_records() -> Vec<String> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
        let mut records = Vec::new();
        for dir in [
            "audit/native",
            "audit/aks",
            "audit/eks",
            "audit/gke",
            "audit/webhook",
            "audit/lake",
            "audit/partial",
            "audit/pipelines",
        ] {
            let mut files: Vec<_> = std::fs::read_dir(root.join(dir))
                .expect("fixture dir")
                .map(|e| e.expect("entry").path())
                .collect();
            files.sort();
            for file in files {
                let text = std::fs::read_to_string(&file).expect("fixture");
                records.push(text.trim_start_matches('\u{feff}').to_string());
                records.extend(text.lines().map(String::from));
            }
        }
        let attack = std::fs::read_to_string(root.join("attack/intrusion.log")).expect("fixture");
        records.extend(attack.lines().map(String::from));
        let mut nested = Vec::new();
        for record in &records {
            if let Ok(env) = serde_json::from_str::<Envelope<'_>>(record) {
                for list in [env.items, env.records].into_iter().flatten() {
                    if let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(list) {
                        nested.extend(items.iter().map(|i| i.get().to_string()));
                    }
                }
            }
        }
        records.extend(nested);
        records
    }

    /// Parses `text` both ways and checks they agree: both fail, or both read the same values
    /// (and the annotations found while reading are those `find` finds).
    fn assert_reads_agree(text: &str) -> bool {
        let by_serde = serde_json::from_str::<Envelope<'_>>(text);
        let fast = if has_control_bytes(text) {
            None
        } else {
            let mut reader = JsonReader::new(text);
            Envelope::read(&mut reader, Wanted::default())
                .and_then(|env| reader.end().map(|()| env))
                .ok()
        };
        let Some(mut fast) = fast else {
            return false;
        };
        let serde = match by_serde {
            Ok(env) => env,
            Err(e) => panic!("the reader accepted what serde_json rejects ({e}): {text}"),
        };
        let known = fast.known_annotations.take();
        let identity = fast.identity.take();
        assert_eq!(format!("{fast:?}"), format!("{serde:?}"), "{text}");
        if let Some(IdentityText { head, tail }) = identity {
            // The identity members alone, a `null` in place of the source addresses, read as
            // they do in the whole record.
            let alone = if tail.is_empty() {
                format!("{{\"user\":{head}}}")
            } else {
                format!("{{\"user\":{head}null{tail}}}")
            };
            let only: Envelope<'_> = serde_json::from_str(&alone).expect("identity text parses");
            let members =
                |e: &Envelope<'_>| format!("{:?}", (&e.user, &e.impersonated_user, &e.user_agent));
            assert_eq!(members(&only), members(&serde), "{text}");
        }
        if let Some(raw) = fast.annotations.filter(|r| r.trim_start().starts_with('{')) {
            assert_eq!(
                format!("{:?}", known.expect("read while reading")),
                format!("{:?}", KnownAnnotations::find(raw)),
                "{text}"
            );
        }
        true
    }

    #[test]
    fn predicted_names_are_the_names_the_envelope_reads() {
        for (at, (field, quoted)) in EVENT_ORDER.into_iter().enumerate() {
            assert_eq!(
                field as usize, at,
                "{field:?} is declared in its place in the order"
            );
            let name = std::str::from_utf8(quoted)
                .expect("ascii")
                .strip_prefix('"')
                .and_then(|n| n.strip_suffix("\":"))
                .expect("quoted with a colon");
            assert_eq!(Field::named(name), Some(field), "{name}");
        }
    }

    #[test]
    fn members_in_any_order_or_spelling_read_as_serde_json_reads_them() {
        let records = [
            // The apiserver's order, with optional members left out.
            r#"{"kind":"Event","level":"Metadata","auditID":"a","verb":"get","annotations":{"authorization.k8s.io/decision":"allow"}}"#,
            // Reversed, with spaces before colons and an escaped name.
            r#"{"annotations" :{},"stageTimestamp":"2024-01-01T00:00:00Z","ver\u0062":"list","kind" : "Event"}"#,
            // A prediction that matches a prefix of a longer name is not taken for it.
            r#"{"kind":"Event","level":"Request","levelx":"unknown","auditID":"b","auditIDs":[1]}"#,
            // Repeated members: the last one wins, as in the serde visitor.
            r#"{"kind":"Event","verb":"get","verb":"delete","user":{"username":"a"},"user":null}"#,
            // A member written twice inside a typed struct: both readers refuse it.
            r#"{"kind":"Event","user":{"username":"a","username":"b"}}"#,
            // Inside `user` and `objectRef`: the apiserver's order with members the reader does
            // not keep, then reversed with an escaped name and spaces, then a name written twice
            // (once escaped), and `name` before the longer names it prefixes.
            r#"{"kind":"Event","user":{"username":"u","uid":"1","groups":["g"],"extra":{"k":["v"]}},"objectRef":{"resource":"pods","namespace":"n","name":"p","uid":"2","apiGroup":"","apiVersion":"v1","resourceVersion":"9","subresource":"exec"}}"#,
            r#"{"kind":"Event","user":{"\u0067roups":["g"],"username" :"u"},"objectRef":{"subresource":"log","apiVersion":"v1","n\u0061me":"p","resource":"pods"}}"#,
            r#"{"kind":"Event","objectRef":{"name":"a","names":"x","namespace":"n","n\u0061me":"b"}}"#,
            r#"{"kind":"Event","user":{"groups":[],"\u0067roups":["g"]}}"#,
        ];
        for record in records {
            assert_reads_agree(record);
        }
        assert!(
            records[5..=6].iter().all(|r| assert_reads_agree(r)),
            "read fast"
        );
        assert!(assert_reads_agree(records[2]));
        let mut reader = JsonReader::new(records[2]);
        let env = Envelope::read(&mut reader, Wanted::default()).expect("read");
        assert_eq!(
            env.unknown.len(),
            2,
            "levelx and auditIDs are not level and auditID"
        );
    }

    #[test]
    fn the_identity_text_is_kept_only_when_it_alone_holds_the_identity_members() {
        let identity = |record: &str| {
            assert!(assert_reads_agree(record), "read fast: {record}");
            Envelope::parse(record, Wanted::default())
                .expect("parses")
                .identity
                .map(|t| (t.head.to_string(), t.tail.to_string()))
        };
        let text = |head: &str, tail: &str| Some((head.to_string(), tail.to_string()));
        // The apiserver's order, with and without the optional members; the source addresses
        // are left out.
        let user = r#"{"username":"u","groups":["g"]}"#;
        let full = format!(
            r#"{{"kind":"Event","verb":"get","user":{user},"impersonatedUser":{{"username":"i"}},"sourceIPs":["10.0.0.1"],"userAgent":"kubectl","objectRef":{{"resource":"pods"}}}}"#
        );
        assert_eq!(
            identity(&full),
            text(
                r#"{"username":"u","groups":["g"]},"impersonatedUser":{"username":"i"},"sourceIPs":"#,
                r#","userAgent":"kubectl""#
            )
        );
        let short = format!(r#"{{"kind":"Event","user":{user},"userAgent":"kubectl"}}"#);
        assert_eq!(
            identity(&short),
            text(
                r#"{"username":"u","groups":["g"]},"userAgent":"kubectl""#,
                ""
            )
        );
        // Spaces around the members (a value's text starts with the spaces before it);
        // addresses written twice (the second ones count, and only they are left out).
        let spaced = format!(
            r#"{{"kind":"Event", "user": {user} , "sourceIPs" : ["10.0.0.1"] , "userAgent": "k"}}"#
        );
        assert_eq!(
            identity(&spaced),
            text(
                r#" {"username":"u","groups":["g"]} , "sourceIPs" :"#,
                r#" , "userAgent": "k""#
            )
        );
        let twice = format!(
            r#"{{"kind":"Event","user":{user},"sourceIPs":["10.0.0.1"],"sourceIPs":["10.0.0.2"],"userAgent":"k"}}"#
        );
        assert_eq!(
            identity(&twice),
            text(
                r#"{"username":"u","groups":["g"]},"sourceIPs":["10.0.0.1"],"sourceIPs":"#,
                r#","userAgent":"k""#
            )
        );
        for record in [
            // An identity member outside the run.
            format!(r#"{{"kind":"Event","sourceIPs":["10.0.0.2"],"user":{user},"userAgent":"k"}}"#),
            format!(r#"{{"kind":"Event","user":{user},"userAgent":"k","sourceIPs":["10.0.0.2"]}}"#),
            // `user` written twice: the second one counts.
            format!(
                r#"{{"kind":"Event","user":{user},"userAgent":"k","user":{{"username":"v"}}}}"#
            ),
            // Another member inside the run, known or not.
            format!(r#"{{"kind":"Event","user":{user},"verb":"get","userAgent":"k"}}"#),
            format!(r#"{{"kind":"Event","user":{user},"x":1,"userAgent":"k"}}"#),
            // No user agent, or no user.
            format!(r#"{{"kind":"Event","user":{user},"sourceIPs":["10.0.0.2"]}}"#),
            r#"{"kind":"Event","sourceIPs":["10.0.0.2"],"userAgent":"k"}"#.to_string(),
        ] {
            assert_eq!(identity(&record), None, "{record}");
        }
    }

    #[test]
    fn an_unwanted_reason_is_checked_and_skipped_and_the_rest_read() {
        let record = r#"{"kind":"Event","auditID":"a","verb":"get","annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":"RBAC: allowed by \"edit\""}}"#;
        let read = |reason: bool| {
            Envelope::parse(record, Wanted { reason })
                .expect("parses")
                .known_annotations
                .expect("known annotations")
        };
        let all = read(true);
        assert_eq!(all.reason.as_deref(), Some(r#"RBAC: allowed by "edit""#));
        let without = read(false);
        assert_eq!(without.reason, None);
        assert_eq!(without.decision.as_deref(), Some("allow"));
        // Skipped is still checked: a broken escape in the reason is an error either way.
        let broken = record.replace(r#"\"edit"#, r#"\x"#);
        assert!(Envelope::parse(&broken, Wanted { reason: false }).is_err());
    }

    #[test]
    fn the_fast_reader_reads_every_fixture_as_serde_json_does() {
        let records = fixture_records();
        let mut read_fast = 0;
        for record in &records {
            if assert_reads_agree(record) {
                read_fast += 1;
            } else {
                // It may give a compact record away only when serde_json rejects it too.
                assert!(
                    has_control_bytes(record)
                        || serde_json::from_str::<Envelope<'_>>(record).is_err(),
                    "gave up on a good compact record: {record}"
                );
            }
        }
        assert!(read_fast > 3000, "{read_fast} of {}", records.len());
    }

    #[test]
    fn the_fast_reader_never_accepts_a_damaged_record_serde_json_rejects() {
        let records = fixture_records();
        // A spread of shapes: every fixture line but the long attack log, and some of that.
        let sample = records
            .iter()
            .filter(|r| !r.contains('\n'))
            .step_by(101)
            .take(30);
        let mut checked = 0;
        for record in sample {
            for cut in (0..record.len()).filter(|c| record.is_char_boundary(*c)) {
                assert_reads_agree(&record[..cut]);
                checked += 1;
            }
            for (i, (at, _)) in record.char_indices().enumerate() {
                // Each position gets two of the replacements, in turn.
                let replacements = [
                    '"', '\\', '{', '}', '[', ']', ',', ':', '0', '-', 'n', ' ', 'e', '.',
                ];
                for b in [replacements[i % 14], replacements[(i + 7) % 14]] {
                    let mut damaged = record.clone();
                    let len = damaged[at..].chars().next().map_or(0, char::len_utf8);
                    damaged.replace_range(at..at + len, &b.to_string());
                    assert_reads_agree(&damaged);
                    checked += 1;
                }
            }
        }
        assert!(checked > 20_000, "{checked}");
    }

    #[test]
    fn json_strings_unescape_as_serde_json_does() {
        for literal in [
            r#""""#,
            r#""allow""#,
            r#""RBAC: allowed by ClusterRoleBinding \"system:x\" of ClusterRole \"y\"""#,
            r#""a\\b\/c\bd\fe\nf\rg\th""#,
            r#""caf\u00e9 \u0041 \u4e2d""#,
            r#""emoji \ud83d\ude00 end""#,
            r#""ends with an escaped quote\"""#,
            r#""raw unicode: é, 中, 😀""#,
            r#""\\""#,
        ] {
            let expected: String = serde_json::from_str(literal).expect("valid JSON");
            let text = format!("{literal}, \"next\": 1");
            let got = json_string(&text).expect("a string");
            assert_eq!(got, expected, "{literal}");
            assert_eq!(
                matches!(got, Cow::Borrowed(_)),
                !literal.contains('\\'),
                "{literal}: borrowed exactly when it has no escapes"
            );
        }
        assert_eq!(
            json_string(r#""lone \ud83d here""#).as_deref(),
            Some("lone \u{FFFD} here")
        );
        assert_eq!(json_string("null"), None);
        assert_eq!(json_string(r#""unterminated"#), None);
    }

    #[test]
    fn known_annotations_are_found_by_name_not_by_mention() {
        let raw = r#"{"note":"authorization.k8s.io/decision","x\"authorization.k8s.io/reason":"no",
            "authorization.k8s.io/decision" : "allow","authorization.k8s.io/reason":"RBAC: \"ok\"",
            "pod-security.kubernetes.io/audit-violations":null}"#;
        let known = KnownAnnotations::find(raw);
        assert_eq!(known.decision.as_deref(), Some("allow"));
        assert_eq!(known.reason.as_deref(), Some("RBAC: \"ok\""));
        assert_eq!(known.pod_security_violations, None);
        // The same as parsing the whole map.
        let parsed: KnownAnnotations<'_> = serde_json::from_str(raw).expect("valid JSON");
        assert_eq!(parsed.decision, known.decision);
        assert_eq!(parsed.reason, known.reason);
        let number = KnownAnnotations::find(r#"{"authorization.k8s.io/decision":1}"#);
        assert_eq!(
            number.decision, None,
            "a value that is not text counts as absent"
        );
        let none = KnownAnnotations::find(r#"{"a":"b"}"#);
        assert!(none.decision.is_none() && none.reason.is_none());
    }

    /// Reading the annotations while parsing an Event finds what searching their text finds:
    /// names written as the apiserver writes them (recognised ahead) and written otherwise
    /// (read), escaped names, values that are not text, repeated names, the reason left out.
    /// (They differ on a name repeated after a value that is not text, which no apiserver
    /// writes: reading takes the later string.)
    #[test]
    fn reading_annotations_finds_what_searching_them_finds() {
        let cases = [
            r#"{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":""}"#,
            r#"{"authorization.k8s.io/decision":"forbid","authorization.k8s.io/reason":"RBAC: \"x\"","pod-security.kubernetes.io/audit-violations":"would violate"}"#,
            r#"{"a":"b","authorization.k8s.io/decision" : "allow","pod-security.kubernetes.io/audit-violations":"v"}"#,
            r#"{"authorization.k8s.io\/decision":"allow","authorization.k8s.io/reason":"r"}"#,
            r#"{"authorization.k8s.io/decision":1,"pod-security.kubernetes.io/audit-violations":true}"#,
            r#"{"authorization.k8s.io/decision":"first","authorization.k8s.io/decision":"second"}"#,
            r#"{"mutation.webhook.admission.k8s.io/round_0_index_0":"{\"configuration\":\"x\"}"}"#,
            r#"{}"#,
        ];
        for raw in cases {
            let searched = KnownAnnotations::find(raw);
            for reason in [true, false] {
                let mut r = JsonReader::new(raw);
                let (mut text, mut read) = (None, None);
                KnownAnnotations::read_into(&mut r, reason, &mut text, &mut read).expect("reads");
                assert_eq!(text, Some(raw), "{raw}");
                let read = read.expect("an object");
                assert_eq!(read.decision, searched.decision, "{raw}");
                assert_eq!(
                    read.pod_security_violations, searched.pod_security_violations,
                    "{raw}"
                );
                let reason_found = if reason {
                    searched.reason.clone()
                } else {
                    None
                };
                assert_eq!(read.reason, reason_found, "{raw} (reason: {reason})");
            }
        }
    }
}
