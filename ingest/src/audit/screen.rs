//! Leaving out, while decoding, the audit events that no rule could read.
//!
//! A scan's rules each look at a small part of the log (writes to pods, a non-system user,
//! a failed status), yet building every event into an Arrow row and handing it to the rules was
//! half of a scan's time. The rules' pre-screens (conditions on columns whose values repeat:
//! verb, resource, user, user agent, ...) say which rows a rule can need; a row that no rule's
//! screen admits is counted and dropped before it joins a batch.
//!
//! The rule engine judges values, the decoder remembers the verdicts: each decoding thread keeps
//! the verdict of every key combination (stage, verb, resource, ...) and of every value of the
//! other screened columns it has seen, as the set of rules whose conditions pass. A row passes
//! when some rule passes on its key combination and on every one of its values. A value seen
//! for the first time is judged at once, on a one-row batch; values repeat so much that those
//! judgements are a few per thousand rows. If they are not (every event from another address,
//! say), the thread stops screening rather than slow the scan down.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use arrow::array::{
    ArrayRef, BooleanArray, Int32Array, Int64Array, ListBuilder, RecordBatch, StringArray,
    StringBuilder,
};
use arrow::datatypes::{DataType, Field, FieldRef, Schema};
use audithound_models::audit_schema;
use foldhash::fast::FixedState;

use super::row::{AuditRow, IdentityText};

/// A set of rules, one bit each, in words of 64.
pub type RuleBits = Vec<u64>;

/// What a scan's rules say about the values of the columns they are screened on. The rule
/// engine implements it; the decoder asks it about each value it sees for the first time.
pub trait ScreenJudge: Send + Sync {
    /// How many rules the bits of a verdict stand for.
    fn rules(&self) -> usize;
    /// The key columns, judged together: the columns of the batches `judge_keys` is given.
    fn key_columns(&self) -> &[String];
    /// Sets of value columns, each judged together: the columns of the batches `judge_values`
    /// is given for that set.
    fn value_sets(&self) -> &[Vec<String>];
    /// For each row of `keys` (the key columns), the rules whose conditions on them may hold.
    fn judge_keys(&self, keys: &RecordBatch) -> Vec<RuleBits>;
    /// For each row of `values` (the columns of value set `set`), the rules whose conditions
    /// on them may hold.
    fn judge_values(&self, set: usize, values: &RecordBatch) -> Vec<RuleBits>;
    /// The rules that have a condition on value set `set` (the others always pass it).
    fn rules_of_set(&self, set: usize) -> RuleBits;
}

/// Where decoders find the screen of the rules once they are compiled. Decoders wait for it
/// (the rules compile on every core meanwhile), so that every row is judged: whoever holds the
/// handle must set it, to `None` if the rules fail to compile.
#[derive(Clone, Default)]
pub struct ScreenHandle {
    judge: Arc<OnceLock<Option<Arc<dyn ScreenJudge>>>>,
    /// Verdicts that the decoding threads share: each value is judged once, not once a thread.
    verdicts: Arc<SharedVerdicts>,
}

impl ScreenHandle {
    /// A handle without a screen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Publishes the screen; `None` when the rules cannot be screened (every row is kept).
    /// Only the first call counts.
    pub fn set(&self, judge: Option<Arc<dyn ScreenJudge>>) {
        let _ = self.judge.set(judge);
    }

    /// The screen: `None` while the rules compile, `Some(None)` when there is none.
    fn get(&self) -> Option<Option<&Arc<dyn ScreenJudge>>> {
        self.judge.get().map(Option::as_ref)
    }

    /// The screen, once it is set (`None`: there is none).
    fn wait(&self) -> Option<&Arc<dyn ScreenJudge>> {
        self.judge.wait().as_ref()
    }
}

/// Sets a screen handle to "no screen" when dropped unless it was set before: a thread that
/// compiles the rules holds one, so that decoders never wait for a thread that failed.
pub struct SetOnDrop(pub ScreenHandle);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.set(None);
    }
}

impl fmt::Debug for ScreenHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.get() {
            None => "waiting",
            Some(None) => "none",
            Some(Some(_)) => "ready",
        };
        f.debug_tuple("ScreenHandle").field(&state).finish()
    }
}

/// Whether the decoder can screen on `column` of the `audit` table (the rule engine screens
/// only on such columns).
pub fn decoder_reads(column: &str) -> bool {
    let schema = audit_schema();
    match (Column::named(column), schema.field_with_name(column)) {
        (Some(c), Ok(field)) => c.has_type(field.data_type()),
        _ => false,
    }
}

/// One decoding thread's view of the screen.
pub(crate) enum Screening {
    /// Every row is kept.
    Off,
    /// The rules are compiling; the first row waits for the screen.
    Waiting(ScreenHandle),
    /// Rows are judged.
    On(Box<RowScreen>),
}

impl Screening {
    /// Screening as the options ask: off without a handle.
    pub(crate) fn new(handle: Option<&ScreenHandle>) -> Self {
        match handle {
            None => Screening::Off,
            Some(h) => Screening::Waiting(h.clone()),
        }
    }

    /// Whether `row` goes into the batch: `false` only when no rule could read it.
    pub(crate) fn admits(&mut self, row: &AuditRow<'_>) -> bool {
        if let Screening::Waiting(handle) = self {
            let verdicts = Arc::clone(&handle.verdicts);
            *self = match handle
                .wait()
                .and_then(|j| RowScreen::sharing(Arc::clone(j), verdicts))
            {
                Some(screen) => Screening::On(Box::new(screen)),
                None => Screening::Off,
            }
        }
        match self {
            Screening::On(screen) => {
                let admitted = screen.admits(row);
                if screen.gave_up() {
                    tracing::debug!(
                        judged = screen.rows,
                        new_values = screen.misses,
                        "screening stopped: too many values are new"
                    );
                    *self = Screening::Off;
                }
                admitted
            }
            _ => true,
        }
    }
}

/// A column that the decoder can screen on, and how to read it from a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Stage,
    Verb,
    Resource,
    Subresource,
    ApiGroup,
    ApiVersion,
    RequestUri,
    ResponseCode,
    UserName,
    UserGroups,
    ImpersonatedUser,
    ImpersonatedGroups,
    SourceIp,
    UserAgent,
    Namespace,
    Decision,
    PodSecurityViolations,
    Level,
    Privileged,
    HostPid,
    HostNetwork,
    HostIpc,
    RunAsRoot,
    AllowPrivilegeEscalation,
    ReadOnlyRootFs,
    SeccompUnconfined,
    ApparmorUnconfined,
    AutomountToken,
    TokenExpirationSeconds,
}

/// Reads one boolean fact of a pod template.
type FactFlag = fn(&super::ObjectFacts) -> Option<bool>;

/// The value of one screened column of a row.
enum Cell<'r> {
    Text(Option<&'r str>),
    Number(Option<i32>),
    Long(Option<i64>),
    Flag(Option<bool>),
    List(Option<&'r [Cow<'r, str>]>),
}

impl Column {
    fn named(name: &str) -> Option<Column> {
        Some(match name {
            "stage" => Column::Stage,
            "verb" => Column::Verb,
            "resource" => Column::Resource,
            "subresource" => Column::Subresource,
            "api_group" => Column::ApiGroup,
            "api_version" => Column::ApiVersion,
            "request_uri" => Column::RequestUri,
            "response_code" => Column::ResponseCode,
            "user_name" => Column::UserName,
            "user_groups" => Column::UserGroups,
            "impersonated_user" => Column::ImpersonatedUser,
            "impersonated_groups" => Column::ImpersonatedGroups,
            "source_ip" => Column::SourceIp,
            "user_agent" => Column::UserAgent,
            "namespace" => Column::Namespace,
            "decision" => Column::Decision,
            "pod_security_violations" => Column::PodSecurityViolations,
            "level" => Column::Level,
            "privileged" => Column::Privileged,
            "host_pid" => Column::HostPid,
            "host_network" => Column::HostNetwork,
            "host_ipc" => Column::HostIpc,
            "run_as_root" => Column::RunAsRoot,
            "allow_privilege_escalation" => Column::AllowPrivilegeEscalation,
            "read_only_root_fs" => Column::ReadOnlyRootFs,
            "seccomp_unconfined" => Column::SeccompUnconfined,
            "apparmor_unconfined" => Column::ApparmorUnconfined,
            "automount_token" => Column::AutomountToken,
            "token_expiration_seconds" => Column::TokenExpirationSeconds,
            _ => return None,
        })
    }

    #[inline]
    fn cell<'r>(self, row: &'r AuditRow<'_>) -> Cell<'r> {
        let text = |v: &'r Option<Cow<'_, str>>| Cell::Text(v.as_deref());
        let list = |v: &'r Option<Vec<Cow<'r, str>>>| Cell::List(v.as_deref());
        match self {
            Column::Stage => text(&row.stage),
            Column::Verb => text(&row.verb),
            Column::Resource => text(&row.resource),
            Column::Subresource => text(&row.subresource),
            Column::ApiGroup => text(&row.api_group),
            Column::ApiVersion => text(&row.api_version),
            Column::RequestUri => text(&row.request_uri),
            Column::ResponseCode => Cell::Number(row.response_code),
            Column::UserName => text(&row.user_name),
            Column::UserGroups => list(&row.user_groups),
            Column::ImpersonatedUser => text(&row.impersonated_user),
            Column::ImpersonatedGroups => list(&row.impersonated_groups),
            Column::SourceIp => Cell::Text(
                row.source_ips
                    .as_ref()
                    .and_then(|ips| ips.first())
                    .map(|ip| ip.as_ref()),
            ),
            Column::UserAgent => text(&row.user_agent),
            Column::Namespace => text(&row.namespace),
            Column::Decision => text(&row.decision),
            Column::PodSecurityViolations => text(&row.pod_security_violations),
            Column::Level => text(&row.level),
            Column::TokenExpirationSeconds => Cell::Long(
                row.facts
                    .as_deref()
                    .and_then(|f| f.token_expiration_seconds),
            ),
            // Every other column is a fact flag (`fact_flag` names them).
            flag => {
                let read = flag.fact_flag();
                Cell::Flag(row.facts.as_deref().zip(read).and_then(|(f, read)| read(f)))
            }
        }
    }

    /// How to read the column from an event's facts, when it is one of the boolean facts of a
    /// pod template.
    fn fact_flag(self) -> Option<FactFlag> {
        Some(match self {
            Column::Privileged => |f| f.privileged,
            Column::HostPid => |f| f.host_pid,
            Column::HostNetwork => |f| f.host_network,
            Column::HostIpc => |f| f.host_ipc,
            Column::RunAsRoot => |f| f.run_as_root,
            Column::AllowPrivilegeEscalation => |f| f.allow_privilege_escalation,
            Column::ReadOnlyRootFs => |f| f.read_only_root_fs,
            Column::SeccompUnconfined => |f| f.seccomp_unconfined,
            Column::ApparmorUnconfined => |f| f.apparmor_unconfined,
            Column::AutomountToken => |f| f.automount_token,
            _ => return None,
        })
    }

    /// Whether the column's values are of this Arrow type (what `one_row` builds).
    fn has_type(self, data_type: &DataType) -> bool {
        let sample = AuditRow::default();
        match (self.cell(&sample), data_type) {
            (Cell::Text(_), DataType::Utf8)
            | (Cell::Number(_), DataType::Int32)
            | (Cell::Long(_), DataType::Int64)
            | (Cell::Flag(_), DataType::Boolean) => true,
            (Cell::List(_), DataType::List(item)) => item.data_type() == &DataType::Utf8,
            _ => false,
        }
    }
}

impl Cell<'_> {
    /// Appends an encoding of the value that tells every two values apart.
    #[inline]
    fn encode(&self, out: &mut Vec<u8>) {
        let text = |out: &mut Vec<u8>, s: &str| {
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        };
        match self {
            Cell::Text(None)
            | Cell::Number(None)
            | Cell::Long(None)
            | Cell::Flag(None)
            | Cell::List(None) => out.push(0),
            Cell::Text(Some(s)) => {
                out.push(1);
                text(out, s);
            }
            Cell::Number(Some(n)) => {
                out.push(1);
                out.extend_from_slice(&n.to_le_bytes());
            }
            Cell::Long(Some(n)) => {
                out.push(1);
                out.extend_from_slice(&n.to_le_bytes());
            }
            Cell::Flag(Some(b)) => out.push(1 + u8::from(*b)),
            Cell::List(Some(items)) => {
                out.push(1);
                out.extend_from_slice(&(items.len() as u32).to_le_bytes());
                for item in *items {
                    text(out, item);
                }
            }
        }
    }

    /// A one-row array of the value.
    fn one_row(&self) -> ArrayRef {
        match self {
            Cell::Text(v) => Arc::new(StringArray::from(vec![*v])),
            Cell::Number(v) => Arc::new(Int32Array::from(vec![*v])),
            Cell::Long(v) => Arc::new(Int64Array::from(vec![*v])),
            Cell::Flag(v) => Arc::new(BooleanArray::from(vec![*v])),
            Cell::List(v) => {
                let mut b = ListBuilder::new(StringBuilder::new());
                match v {
                    Some(items) => {
                        for item in *items {
                            b.values().append_value(item);
                        }
                        b.append(true);
                    }
                    None => b.append(false),
                }
                Arc::new(b.finish())
            }
        }
    }
}

/// Columns judged together, with the verdicts of the combinations of their values seen so far.
struct Judged {
    columns: Vec<Column>,
    /// The columns other than the pod-fact flags, which are encoded one by one.
    cells: Vec<Column>,
    /// The pod-fact flags among the columns (two bits each in the encoding): nearly every event
    /// has no facts, and then all of them are encoded by one byte.
    flags: Vec<FactFlag>,
    schema: Arc<Schema>,
    /// Which value set of the judge (`None`: the key columns).
    set: Option<usize>,
    /// The rules with conditions on these columns: when none of them is still passing, the
    /// columns need not be looked at.
    rules: Vec<u64>,
    /// Rows that these columns were the last to turn down.
    rejected: u64,
    ids: HashMap<Box<[u8]>, u32, FixedState>,
    /// For a set of one text column (user, user agent, namespace, ...): the ids by the text
    /// itself, so that a value seen before is found without being encoded first.
    texts: Option<TextIds>,
    /// Verdict bits of each id, `words` words each.
    bits: Vec<u64>,
    /// For a set of identity columns, its place among the ids that [`IdentityIds`] keeps for
    /// each identity.
    identity_slot: Option<usize>,
}

/// The ids of the values of one text column, by value (`None`: the column is null).
struct TextIds {
    column: Column,
    ids: HashMap<Box<str>, u32, FixedState>,
    null: Option<u32>,
}

impl TextIds {
    /// A map for `columns` when they are one text column.
    fn of(columns: &[Column]) -> Option<TextIds> {
        match columns {
            [column] if matches!(column.cell(&AuditRow::default()), Cell::Text(_)) => {
                Some(TextIds {
                    column: *column,
                    ids: HashMap::default(),
                    null: None,
                })
            }
            _ => None,
        }
    }

    /// The id of `row`'s value, if it was seen before.
    #[inline]
    fn get(&self, row: &AuditRow<'_>) -> Option<u32> {
        match self.column.cell(row) {
            Cell::Text(Some(text)) => self.ids.get(text).copied(),
            Cell::Text(None) => self.null,
            _ => None,
        }
    }

    /// Remembers `id` as the id of `row`'s value.
    fn insert(&mut self, row: &AuditRow<'_>, id: u32) {
        match self.column.cell(row) {
            Cell::Text(Some(text)) => {
                self.ids.insert(text.into(), id);
            }
            Cell::Text(None) => self.null = Some(id),
            _ => {}
        }
    }

    fn clear(&mut self) {
        self.ids.clear();
        self.null = None;
    }
}

impl Judged {
    /// Appends an encoding of `row`'s values of these columns that tells every two
    /// combinations apart.
    #[inline]
    fn encode(&self, row: &AuditRow<'_>, out: &mut Vec<u8>) {
        for c in &self.cells {
            c.cell(row).encode(out);
        }
        if self.flags.is_empty() {
            return;
        }
        match row.facts.as_deref() {
            None => out.push(0),
            Some(facts) => {
                // Two bits a flag: 0 absent, 1 false, 2 true (at most 32 flags: `fact_flag`
                // names fewer).
                let mut packed = 0u64;
                for (i, read) in self.flags.iter().enumerate() {
                    let bits = read(facts).map_or(0u64, |b| 1 + u64::from(b));
                    packed |= bits << (2 * (i % 32));
                }
                out.push(1);
                out.extend_from_slice(&packed.to_le_bytes());
            }
        }
    }
}

/// The columns whose values come from an event's `user`, `impersonatedUser` and `userAgent`
/// members ([`AuditRow::identity`]; the source address is not among them).
const IDENTITY_COLUMNS: [Column; 5] = [
    Column::UserName,
    Column::UserGroups,
    Column::ImpersonatedUser,
    Column::ImpersonatedGroups,
    Column::UserAgent,
];

/// An id not looked up yet.
const UNKNOWN: u32 = u32::MAX;

/// The value ids of the sets of identity columns, by the text of an event's identity members.
/// Some rules pass every key combination and are turned down only by their user,
/// impersonation, user agent and source address, so nearly every row needs a lookup of each.
/// The text of the user, impersonation and user agent repeats as much as any of them (a cluster
/// has a few dozen kinds), so one lookup of it finds the ids of them all.
struct IdentityIds {
    /// Sets of identity columns: the ids kept for each identity.
    slots: usize,
    /// By [`IdentityText::write_key`].
    ids: HashMap<Box<str>, u32, FixedState>,
    /// The key being looked up.
    key: String,
    /// The value id of every set of every identity, `slots` each (`UNKNOWN` until looked up).
    known: Vec<u32>,
    /// Identities looked up, and how many of them were new.
    looked_up: u64,
    new: u64,
}

/// Identities remembered before they are forgotten: their texts are a few hundred bytes.
const MAX_IDENTITIES: usize = 1 << 14;
/// Longer identity texts (a user in hundreds of groups, say) are not remembered: their values
/// are looked up set by set, and the identities kept stay within 16 MiB a thread.
const MAX_IDENTITY_BYTES: usize = 1024;
/// Identities looked up before the screen may stop remembering them. Early on many are new (a
/// cluster's users and agents show up in its first minutes), so the trial is long.
const IDENTITY_TRIAL: u64 = 1 << 16;

impl IdentityIds {
    fn new(slots: usize) -> Self {
        IdentityIds {
            slots,
            ids: HashMap::default(),
            key: String::new(),
            known: Vec::new(),
            looked_up: 0,
            new: 0,
        }
    }

    /// The id of `text`, new ones included.
    fn id_of(&mut self, text: IdentityText<'_>) -> usize {
        self.looked_up += 1;
        text.write_key(&mut self.key);
        if let Some(id) = self.ids.get(self.key.as_str()) {
            return *id as usize;
        }
        self.new += 1;
        if self.ids.len() >= MAX_IDENTITIES {
            self.clear();
        }
        let id = self.ids.len();
        self.ids.insert(self.key.as_str().into(), id as u32);
        self.known.resize(self.known.len() + self.slots, UNKNOWN);
        id
    }

    fn clear(&mut self) {
        self.ids.clear();
        self.known.clear();
    }
}

/// Values remembered per set of columns before they are forgotten (memory stays bounded on
/// logs where some value never repeats).
const MAX_REMEMBERED: usize = 1 << 18;
/// Rows between two orderings of the value columns by how many rows they turned down.
const REORDER_EVERY: u64 = 4096;
/// Rows judged before a thread may give up on screening.
const GIVE_UP_AFTER: u64 = 8192;

/// Judges rows for one decoding thread, remembering the verdicts of the values it has seen.
pub(crate) struct RowScreen {
    judge: Arc<dyn ScreenJudge>,
    shared: Arc<SharedVerdicts>,
    words: usize,
    judged: Vec<Judged>,
    /// When two or more value sets are of identity columns only.
    identity: Option<IdentityIds>,
    scratch: Vec<u8>,
    passing: Vec<u64>,
    rows: u64,
    misses: u64,
}

impl RowScreen {
    /// A screen over `judge`'s columns; `None` when the decoder cannot read one of them.
    #[cfg(test)]
    pub(crate) fn new(judge: Arc<dyn ScreenJudge>) -> Option<RowScreen> {
        Self::sharing(judge, Arc::default())
    }

    /// A screen over `judge`'s columns that looks in `shared` for the verdicts of values it has
    /// not seen before, and leaves its own there; `None` when the decoder cannot read one of
    /// the columns.
    pub(crate) fn sharing(
        judge: Arc<dyn ScreenJudge>,
        shared: Arc<SharedVerdicts>,
    ) -> Option<RowScreen> {
        let schema = audit_schema();
        let words = judge.rules().div_ceil(64);
        let set = |names: &[String], set: Option<usize>| -> Option<Judged> {
            let mut columns = Vec::with_capacity(names.len());
            let mut fields: Vec<FieldRef> = Vec::with_capacity(names.len());
            for name in names {
                let field = schema.field_with_name(name).ok()?;
                let column = Column::named(name).filter(|c| c.has_type(field.data_type()));
                let Some(column) = column else {
                    tracing::debug!(column = %name, "screening off: the decoder cannot screen on this column");
                    return None;
                };
                columns.push(column);
                fields.push(Arc::new(Field::clone(field)));
            }
            let rules = match set {
                None => vec![u64::MAX; words],
                Some(s) => judge.rules_of_set(s),
            };
            if rules.len() != words {
                return None;
            }
            let cells = columns
                .iter()
                .copied()
                .filter(|c| c.fact_flag().is_none())
                .collect();
            let flags = columns.iter().filter_map(|c| c.fact_flag()).collect();
            Some(Judged {
                cells,
                flags,
                schema: Arc::new(Schema::new(fields)),
                set,
                rules,
                rejected: 0,
                ids: HashMap::default(),
                texts: TextIds::of(&columns),
                bits: Vec::new(),
                identity_slot: None,
                columns,
            })
        };
        tracing::debug!(
            keys = ?judge.key_columns(),
            values = ?judge.value_sets(),
            rules = judge.rules(),
            "screening on"
        );
        let mut judged = vec![set(judge.key_columns(), None)?];
        for (i, names) in judge.value_sets().iter().enumerate() {
            judged.push(set(names, Some(i))?);
        }
        let of_identity = |j: &Judged| j.columns.iter().all(|c| IDENTITY_COLUMNS.contains(c));
        let slots = judged[1..].iter().filter(|j| of_identity(j)).count();
        // With one such set, looking up the identity costs what looking up the set does.
        let identity = (slots >= 2).then(|| {
            for (slot, j) in judged[1..]
                .iter_mut()
                .filter(|j| of_identity(j))
                .enumerate()
            {
                j.identity_slot = Some(slot);
            }
            IdentityIds::new(slots)
        });
        Some(RowScreen {
            judge,
            shared,
            words,
            judged,
            identity,
            scratch: Vec::new(),
            passing: vec![0; words],
            rows: 0,
            misses: 0,
        })
    }

    /// Whether some rule could read `row`. The key columns are looked at first; then each set
    /// of value columns that some still-passing rule has a condition on, those that turn most
    /// rows down first.
    fn admits(&mut self, row: &AuditRow<'_>) -> bool {
        self.rows += 1;
        if self.words == 0 {
            return false;
        }
        if self.rows.is_multiple_of(REORDER_EVERY) {
            self.judged[1..].sort_by_key(|j| std::cmp::Reverse(j.rejected));
        }
        if self
            .identity
            .as_ref()
            .is_some_and(|ids| ids.looked_up >= IDENTITY_TRIAL && ids.new * 4 > ids.looked_up)
        {
            // Identities that rarely repeat (a credential id in every token, say) cost a lookup
            // and a copy each and save nothing: the value sets are looked up one by one.
            tracing::debug!("identities are not remembered: too many are new");
            self.identity = None;
            for j in &mut self.judged {
                j.identity_slot = None;
            }
        }
        // The row's identity id, once a set of identity columns needs it.
        let mut identity = None;
        for k in 0..self.judged.len() {
            if k > 0
                && !self
                    .passing
                    .iter()
                    .zip(&self.judged[k].rules)
                    .any(|(p, r)| p & r != 0)
            {
                continue;
            }
            let id = self.value_id(k, row, &mut identity);
            let judged = &mut self.judged[k];
            let bits = &judged.bits[id * self.words..(id + 1) * self.words];
            let mut any = 0u64;
            if k == 0 {
                self.passing.copy_from_slice(bits);
                any = bits.iter().fold(0, |a, b| a | b);
            } else {
                for (p, b) in self.passing.iter_mut().zip(bits) {
                    *p &= b;
                    any |= *p;
                }
            }
            if any == 0 {
                judged.rejected += 1;
                return false;
            }
        }
        true
    }

    /// [`Self::id_of`], found by the row's identity (looked up once a row, into `identity`)
    /// when the set is of identity columns.
    fn value_id(&mut self, k: usize, row: &AuditRow<'_>, identity: &mut Option<usize>) -> usize {
        let (Some(slot), Some(text), Some(ids)) = (
            self.judged[k].identity_slot,
            row.identity.filter(|text| text.len() <= MAX_IDENTITY_BYTES),
            self.identity.as_mut(),
        ) else {
            return self.id_of(k, row);
        };
        let at = *identity.get_or_insert_with(|| ids.id_of(text)) * ids.slots + slot;
        match ids.known.get(at).copied() {
            Some(UNKNOWN) => {
                let id = self.id_of(k, row);
                if let Some(known) = self.identity.as_mut().and_then(|ids| ids.known.get_mut(at)) {
                    *known = id as u32;
                }
                id
            }
            Some(id) => id as usize,
            None => self.id_of(k, row),
        }
    }

    /// The id of `row`'s values of the `k`th set of columns, judging them if they are new.
    fn id_of(&mut self, k: usize, row: &AuditRow<'_>) -> usize {
        let judged = &mut self.judged[k];
        if let Some(id) = judged.texts.as_ref().and_then(|t| t.get(row)) {
            return id as usize;
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        judged.encode(row, &mut scratch);
        let id = match judged.ids.get(scratch.as_slice()) {
            Some(id) => *id as usize,
            None => {
                self.misses += 1;
                if judged.ids.len() >= MAX_REMEMBERED {
                    forget(judged, self.identity.as_mut());
                }
                let verdict = self.shared.get_or_judge(judged.set, &scratch, || {
                    judge_one(self.judge.as_ref(), judged, row, self.words)
                });
                let id = judged.ids.len();
                judged.ids.insert(scratch.as_slice().into(), id as u32);
                judged.bits.extend_from_slice(&verdict);
                id
            }
        };
        if let Some(texts) = &mut judged.texts {
            texts.insert(row, id as u32);
        }
        self.scratch = scratch;
        id
    }

    /// Whether judging new values costs more than screening saves: after a while, more than
    /// one row in eight brought a value never seen before.
    fn gave_up(&self) -> bool {
        self.rows >= GIVE_UP_AFTER && self.misses * 8 > self.rows
    }
}

/// Forgets the values of `judged` and their verdicts, and with them the ids that `identity`
/// keeps (some are ids of `judged`). A row being judged meanwhile finds no ids kept for its
/// identity and looks up the rest of its sets one by one.
fn forget(judged: &mut Judged, identity: Option<&mut IdentityIds>) {
    judged.ids.clear();
    judged.bits.clear();
    if let Some(texts) = &mut judged.texts {
        texts.clear();
    }
    if let Some(ids) = identity {
        ids.clear();
    }
}

/// The verdicts of the decoding threads, by set of columns (`None`: the key columns) and
/// encoding of values: a value new to one thread is often known to another, and judging one
/// runs a one-row batch through every rule's conditions.
#[derive(Default)]
pub(crate) struct SharedVerdicts(Mutex<HashMap<Option<usize>, VerdictsOfSet>>);

/// The verdicts on the combinations of values of one set of columns, by their encoding.
type VerdictsOfSet = HashMap<Box<[u8]>, RuleBits>;

impl SharedVerdicts {
    /// The verdict on `encoding` of the columns of `set`: the one kept, else `judge`'s (kept
    /// for the other threads). The lock is not held while judging.
    fn get_or_judge(
        &self,
        set: Option<usize>,
        encoding: &[u8],
        judge: impl FnOnce() -> RuleBits,
    ) -> RuleBits {
        let known = self.0.lock().ok().and_then(|verdicts| {
            verdicts
                .get(&set)
                .and_then(|of_set| of_set.get(encoding))
                .cloned()
        });
        if let Some(verdict) = known {
            return verdict;
        }
        let verdict = judge();
        if let Ok(mut verdicts) = self.0.lock() {
            let of_set = verdicts.entry(set).or_default();
            if of_set.len() >= MAX_REMEMBERED {
                of_set.clear();
            }
            of_set.insert(encoding.into(), verdict.clone());
        }
        verdict
    }
}

/// The verdict on `row`'s values of the columns of `judged`, `words` words long; every rule
/// passes when the judge cannot tell (its answer is malformed).
fn judge_one(
    judge: &dyn ScreenJudge,
    judged: &Judged,
    row: &AuditRow<'_>,
    words: usize,
) -> RuleBits {
    let columns = judged
        .columns
        .iter()
        .map(|c| c.cell(row).one_row())
        .collect();
    let all = vec![u64::MAX; words];
    let Ok(batch) = RecordBatch::try_new(Arc::clone(&judged.schema), columns) else {
        return all;
    };
    let verdicts = match judged.set {
        None => judge.judge_keys(&batch),
        Some(set) => judge.judge_values(set, &batch),
    };
    match verdicts.into_iter().next() {
        Some(v) if v.len() == words => v,
        _ => all,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use std::sync::Mutex;

    /// Two rules: rule 0 wants `create` of pods; rule 1 wants user `eve`, whatever she does.
    struct TwoRules {
        keys: Vec<String>,
        sets: Vec<Vec<String>>,
        asked: Mutex<usize>,
    }

    impl TwoRules {
        fn new() -> Self {
            TwoRules {
                keys: vec!["verb".into(), "resource".into(), "privileged".into()],
                sets: vec![vec!["user_name".into()], vec!["user_groups".into()]],
                asked: Mutex::new(0),
            }
        }
    }

    impl ScreenJudge for TwoRules {
        fn rules(&self) -> usize {
            2
        }
        fn key_columns(&self) -> &[String] {
            &self.keys
        }
        fn value_sets(&self) -> &[Vec<String>] {
            &self.sets
        }
        fn judge_keys(&self, keys: &RecordBatch) -> Vec<RuleBits> {
            *self.asked.lock().unwrap() += 1;
            let verb = keys.column(0).as_string::<i32>();
            let resource = keys.column(1).as_string::<i32>();
            (0..keys.num_rows())
                .map(|r| {
                    let create_pod = verb.value(r) == "create" && resource.value(r) == "pods";
                    vec![u64::from(create_pod) | 2]
                })
                .collect()
        }
        fn judge_values(&self, set: usize, values: &RecordBatch) -> Vec<RuleBits> {
            *self.asked.lock().unwrap() += 1;
            (0..values.num_rows())
                .map(|r| match set {
                    0 => {
                        let user = values.column(0).as_string::<i32>();
                        vec![1 | (u64::from(user.is_valid(r) && user.value(r) == "eve") << 1)]
                    }
                    2 => {
                        // A source address, when a test adds it: rule 1 only from 10.0.0.9.
                        let ip = values.column(0).as_string::<i32>();
                        let from = ip.is_valid(r) && ip.value(r) == "10.0.0.9";
                        vec![1 | (u64::from(from) << 1)]
                    }
                    _ => {
                        // Groups are read as a list: every rule passes.
                        assert!(values.column(0).as_list_opt::<i32>().is_some());
                        vec![3]
                    }
                })
                .collect()
        }
        fn rules_of_set(&self, set: usize) -> RuleBits {
            // The user name (and the address) are rule 1's; say the groups are rule 0's.
            vec![if set == 1 { 0b01 } else { 0b10 }]
        }
    }

    fn row<'a>(verb: &'a str, resource: &'a str, user: &'a str) -> AuditRow<'a> {
        AuditRow {
            verb: Some(verb.into()),
            resource: Some(resource.into()),
            user_name: Some(user.into()),
            user_groups: Some(vec!["system:authenticated".into()]),
            ..Default::default()
        }
    }

    /// An identity text that is all head.
    fn whole(text: &str) -> IdentityText<'_> {
        IdentityText {
            head: text,
            tail: "",
        }
    }

    #[test]
    fn the_key_encoding_tells_every_combination_of_pod_facts_apart() {
        let judge = Arc::new(TwoRules {
            keys: vec![
                "verb".into(),
                "privileged".into(),
                "host_pid".into(),
                "automount_token".into(),
                "token_expiration_seconds".into(),
            ],
            sets: Vec::new(),
            asked: Mutex::new(0),
        });
        let screen = RowScreen::new(judge).expect("columns the decoder reads");
        let keys = &screen.judged[0];
        assert_eq!(keys.flags.len(), 3, "the flags are packed");
        let flag = [None, Some(false), Some(true)];
        let mut seen = std::collections::HashSet::new();
        let mut rows = 0;
        for facts in [false, true] {
            for (a, b, c) in (0..27).map(|i| (flag[i % 3], flag[i / 3 % 3], flag[i / 9])) {
                for expiry in [None, Some(3600)] {
                    let row = AuditRow {
                        verb: Some("create".into()),
                        facts: facts.then(|| {
                            Box::new(super::super::ObjectFacts {
                                privileged: a,
                                host_pid: b,
                                automount_token: c,
                                token_expiration_seconds: expiry,
                                ..Default::default()
                            })
                        }),
                        ..Default::default()
                    };
                    let mut encoded = Vec::new();
                    keys.encode(&row, &mut encoded);
                    // Rows without facts have every flag and the expiry absent: one encoding.
                    if facts || (a, b, c, expiry) == (None, None, None, None) {
                        rows += 1;
                        assert!(seen.insert(encoded), "{a:?} {b:?} {c:?} {expiry:?}");
                    }
                }
            }
        }
        assert_eq!(rows, 1 + 27 * 2);
    }

    #[test]
    fn keeps_the_rows_some_rule_passes_and_judges_each_value_once() {
        let judge = Arc::new(TwoRules::new());
        let mut screen = RowScreen::new(judge.clone()).expect("columns the decoder reads");
        let rows = [
            (row("create", "pods", "alice"), true),
            (row("get", "pods", "alice"), false),
            (row("get", "pods", "eve"), true),
            (row("create", "pods", "eve"), true),
            (row("list", "secrets", "alice"), false),
            (row("create", "pods", "alice"), true),
            (row("get", "pods", "alice"), false),
        ];
        for (r, expected) in &rows {
            assert_eq!(
                screen.admits(r),
                *expected,
                "{:?} by {:?}",
                r.verb,
                r.user_name
            );
        }
        // Key combinations: (create,pods), (get,pods), (list,secrets); users: alice, eve;
        // groups: one list.
        assert_eq!(*judge.asked.lock().unwrap(), 3 + 2 + 1);
    }

    #[test]
    fn a_text_value_seen_before_keeps_its_verdict_and_null_is_not_empty() {
        let judge = Arc::new(TwoRules::new());
        let mut screen = RowScreen::new(judge.clone()).expect("screen");
        let with_user = |user: Option<&'static str>| {
            let mut r = row("get", "pods", "x");
            r.user_name = user.map(Cow::Borrowed);
            r
        };
        // Rule 1 wants eve; nobody else, whether unnamed or named "", passes `get`.
        let users = [None, Some(""), Some("eve"), Some("alice")];
        for user in users {
            assert_eq!(
                screen.admits(&with_user(user)),
                user == Some("eve"),
                "{user:?}"
            );
        }
        let asked = *judge.asked.lock().unwrap();
        assert_eq!(asked, 1 + users.len(), "one key and each user judged once");
        // Met again (in another order), each is found by its text and keeps its verdict.
        for user in users.into_iter().rev().chain(users) {
            assert_eq!(
                screen.admits(&with_user(user)),
                user == Some("eve"),
                "{user:?}"
            );
        }
        assert_eq!(*judge.asked.lock().unwrap(), asked, "nothing judged again");
        let texts = screen.judged[1]
            .texts
            .as_ref()
            .expect("user_name is one text column");
        assert_eq!(texts.ids.len(), 3, "three names");
        assert!(texts.null.is_some(), "and the null user");
        assert!(
            screen.judged[0].texts.is_none(),
            "the key columns are not one text"
        );
    }

    #[test]
    fn sets_of_identity_columns_are_found_by_the_identity_text_once_a_row() {
        let judge = Arc::new(TwoRules::new());
        let mut screen = RowScreen::new(judge.clone()).expect("screen");
        assert!(
            screen.identity.is_some(),
            "user name and groups are both identity columns"
        );
        let with = |user: &'static str, identity: &'static str| {
            let mut r = row("get", "pods", user);
            r.identity = Some(whole(identity));
            r
        };
        assert!(screen.admits(&with("eve", "E")));
        assert!(!screen.admits(&with("alice", "A")));
        // The decoder gives equal texts only to equal values; rows that break that rule show
        // that the ids come from the text.
        assert!(
            screen.admits(&with("alice", "E")),
            "eve's text, eve's verdict"
        );
        assert!(
            !screen.admits(&with("eve", "A")),
            "alice's text, alice's verdict"
        );
        // Without a text, the values decide.
        assert!(screen.admits(&row("get", "pods", "eve")));
        assert!(!screen.admits(&row("get", "pods", "alice")));
        assert_eq!(
            *judge.asked.lock().unwrap(),
            1 + 2,
            "one key and two users judged"
        );
        // When a set forgets its ids, the identities forget theirs with them.
        forget(&mut screen.judged[1], screen.identity.as_mut());
        assert!(
            !screen.admits(&with("alice", "E")),
            "found by its value again"
        );
        assert_eq!(screen.identity.as_ref().map(|i| i.ids.len()), Some(1));

        // A long identity text is not remembered; its values are looked up set by set.
        let judge = Arc::new(TwoRules::new());
        let mut screen = RowScreen::new(judge).expect("screen");
        let long = "x".repeat(MAX_IDENTITY_BYTES + 1);
        for (user, admitted) in [("eve", true), ("alice", false)] {
            let mut r = row("get", "pods", user);
            r.identity = Some(whole(&long));
            assert_eq!(screen.admits(&r), admitted, "{user}");
        }
        assert_eq!(screen.identity.as_ref().map(|i| i.ids.len()), Some(0));

        // Identities that rarely repeat are soon no longer remembered; the verdicts stand.
        let judge = Arc::new(TwoRules::new());
        let mut screen = RowScreen::new(judge).expect("screen");
        let texts: Vec<String> = (0..IDENTITY_TRIAL + 10)
            .map(|i| format!("id-{i}"))
            .collect();
        for (i, text) in texts.iter().enumerate() {
            let user = if i % 2 == 0 { "eve" } else { "alice" };
            let mut r = row("get", "pods", user);
            r.identity = Some(whole(text));
            assert_eq!(screen.admits(&r), user == "eve", "{i}");
        }
        assert!(screen.identity.is_none(), "every identity was new");
        assert!(screen.judged.iter().all(|j| j.identity_slot.is_none()));

        // With one set of identity columns, its own lookup is as cheap: no identities kept.
        let mut one = TwoRules::new();
        one.sets[1] = vec!["api_version".into()];
        let screen = RowScreen::new(Arc::new(one)).expect("screen");
        assert!(screen.identity.is_none());
        assert!(screen.judged.iter().all(|j| j.identity_slot.is_none()));
    }

    #[test]
    fn the_source_address_is_judged_by_itself_not_by_the_identity_text() {
        let mut judge = TwoRules::new();
        judge.sets.push(vec!["source_ip".into()]);
        let mut screen = RowScreen::new(Arc::new(judge)).expect("screen");
        let slots: Vec<_> = screen.judged.iter().map(|j| j.identity_slot).collect();
        assert_eq!(
            slots,
            [None, Some(0), Some(1), None],
            "user name and groups by the identity text; the address by itself"
        );
        let from = |ip: &'static str| {
            let mut r = row("get", "pods", "eve");
            r.source_ips = Some(vec![ip.into()]);
            r.identity = Some(IdentityText {
                head: r#"{"username":"eve"},"sourceIPs":"#,
                tail: r#","userAgent":"k""#,
            });
            r
        };
        assert!(screen.admits(&from("10.0.0.9")));
        assert!(
            !screen.admits(&from("10.0.0.1")),
            "the same identity text from another address"
        );
        assert!(screen.admits(&from("10.0.0.9")));
        assert_eq!(screen.identity.as_ref().map(|i| i.ids.len()), Some(1));
    }

    #[test]
    fn threads_that_share_verdicts_judge_each_value_once_between_them() {
        let judge = Arc::new(TwoRules::new());
        let shared = Arc::new(SharedVerdicts::default());
        let mut first = RowScreen::sharing(judge.clone(), Arc::clone(&shared)).expect("screen");
        let mut second = RowScreen::sharing(judge.clone(), shared).expect("screen");
        assert!(first.admits(&row("create", "pods", "alice")));
        assert!(!first.admits(&row("get", "pods", "alice")));
        let asked = *judge.asked.lock().unwrap();
        // The second thread meets the same values: it takes the first one's verdicts, and
        // judges the same as it would alone.
        assert!(second.admits(&row("create", "pods", "alice")));
        assert!(!second.admits(&row("get", "pods", "alice")));
        assert_eq!(*judge.asked.lock().unwrap(), asked, "nothing judged again");
        assert!(second.admits(&row("get", "pods", "eve")));
        assert_eq!(
            *judge.asked.lock().unwrap(),
            asked + 1,
            "a new user is judged"
        );
        assert!(first.admits(&row("get", "pods", "eve")));
        assert_eq!(*judge.asked.lock().unwrap(), asked + 1, "and only once");
    }

    #[test]
    fn columns_that_no_passing_rule_has_conditions_on_are_not_looked_at() {
        let judge = Arc::new(TwoRules::new());
        let mut screen = RowScreen::new(judge.clone()).expect("screen");
        // Rule 0 (the only one with conditions on the groups) never passes `get`: the groups,
        // new in every row, are never judged.
        for i in 0..100 {
            let group = format!("team-{i}");
            let mut r = row("get", "pods", "eve");
            r.user_groups = Some(vec![group.as_str().into()]);
            assert!(screen.admits(&r), "eve is rule 1's");
        }
        assert_eq!(
            *judge.asked.lock().unwrap(),
            1 + 1,
            "one key and one user judged"
        );
    }

    #[test]
    fn a_column_the_decoder_cannot_read_turns_screening_off() {
        let mut judge = TwoRules::new();
        judge.sets.push(vec!["name".into()]);
        assert!(RowScreen::new(Arc::new(judge)).is_none());
        let mut judge = TwoRules::new();
        judge.keys.push("no_such_column".into());
        assert!(RowScreen::new(Arc::new(judge)).is_none());
    }

    #[test]
    fn null_and_empty_values_are_told_apart() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        Cell::Text(None).encode(&mut a);
        Cell::Text(Some("")).encode(&mut b);
        assert_ne!(a, b);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let one: Vec<Cow<'_, str>> = vec!["ab".into()];
        let two: Vec<Cow<'_, str>> = vec!["a".into(), "b".into()];
        Cell::List(Some(&one)).encode(&mut a);
        Cell::List(Some(&two)).encode(&mut b);
        assert_ne!(a, b);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        Cell::Flag(Some(false)).encode(&mut a);
        Cell::Flag(None).encode(&mut b);
        assert_ne!(a, b);
    }

    #[test]
    fn waits_for_the_screen_then_judges_every_row() {
        let handle = ScreenHandle::new();
        let mut screening = Screening::new(Some(&handle));
        let publisher = std::thread::spawn({
            let handle = handle.clone();
            move || {
                std::thread::sleep(std::time::Duration::from_millis(50));
                handle.set(Some(Arc::new(TwoRules::new())));
            }
        });
        assert!(
            !screening.admits(&row("get", "pods", "alice")),
            "the first row waited for the screen and was judged"
        );
        assert!(screening.admits(&row("create", "pods", "alice")));
        publisher.join().expect("publisher");
        let none = ScreenHandle::new();
        none.set(None);
        let mut screening = Screening::new(Some(&none));
        assert!(
            screening.admits(&row("get", "pods", "alice")),
            "no screen: kept"
        );
        assert!(matches!(screening, Screening::Off));
    }

    #[test]
    fn a_dropped_publisher_sets_no_screen_so_decoders_go_on() {
        let handle = ScreenHandle::new();
        let failed = std::thread::spawn({
            let guard = SetOnDrop(handle.clone());
            move || {
                let _guard = guard;
                panic!("the rules failed to compile");
            }
        });
        assert!(failed.join().is_err());
        let mut screening = Screening::new(Some(&handle));
        assert!(screening.admits(&row("get", "pods", "alice")));
        // A screen set before the guard drops stays.
        let handle = ScreenHandle::new();
        {
            let _guard = SetOnDrop(handle.clone());
            handle.set(Some(Arc::new(TwoRules::new())));
        }
        assert!(!Screening::new(Some(&handle)).admits(&row("get", "pods", "alice")));
    }

    #[test]
    fn gives_up_when_values_rarely_repeat() {
        let mut screening = Screening::On(Box::new(
            RowScreen::new(Arc::new(TwoRules::new())).expect("screen"),
        ));
        let users: Vec<String> = (0..GIVE_UP_AFTER).map(|i| format!("user-{i}")).collect();
        for u in &users {
            screening.admits(&row("get", "pods", u));
        }
        assert!(matches!(screening, Screening::Off), "every user was new");
        assert!(
            screening.admits(&row("get", "pods", "alice")),
            "off: every row kept"
        );
    }

    #[test]
    fn no_rule_means_no_row() {
        struct NoRules(Vec<String>, Vec<Vec<String>>);
        impl ScreenJudge for NoRules {
            fn rules(&self) -> usize {
                0
            }
            fn key_columns(&self) -> &[String] {
                &self.0
            }
            fn value_sets(&self) -> &[Vec<String>] {
                &self.1
            }
            fn judge_keys(&self, _: &RecordBatch) -> Vec<RuleBits> {
                Vec::new()
            }
            fn judge_values(&self, _: usize, _: &RecordBatch) -> Vec<RuleBits> {
                Vec::new()
            }
            fn rules_of_set(&self, _: usize) -> RuleBits {
                Vec::new()
            }
        }
        let mut screen =
            RowScreen::new(Arc::new(NoRules(vec!["verb".into()], vec![]))).expect("screen");
        assert!(!screen.admits(&row("create", "pods", "eve")));
    }
}
