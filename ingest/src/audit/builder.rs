//! Accumulates decoded audit rows into Arrow batches with the `audit` schema.

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Int32Builder, Int64Builder, ListBuilder,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use audithound_models::audit_schema;

use super::row::{AuditRow, ObjectFacts};

/// Column builders for the `audit` table; `append` one row at a time, `finish` into a batch.
pub struct AuditBatchBuilder {
    len: usize,
    /// Rows since the last row with object facts: their facts columns are null, appended in
    /// one step when the next row with facts comes or the batch finishes (most events are
    /// reads, which carry no object, and thirty null appends per row added up).
    facts_absent: usize,
    cluster: StringBuilder,
    ts: TimestampMicrosecondBuilder,
    request_received_ts: TimestampMicrosecondBuilder,
    audit_id: StringBuilder,
    stage: StringBuilder,
    level: StringBuilder,
    verb: StringBuilder,
    request_uri: StringBuilder,
    user_name: StringBuilder,
    user_groups: ListBuilder<StringBuilder>,
    impersonated_user: StringBuilder,
    impersonated_groups: ListBuilder<StringBuilder>,
    source_ip: StringBuilder,
    source_ips: ListBuilder<StringBuilder>,
    user_agent: StringBuilder,
    resource: StringBuilder,
    subresource: StringBuilder,
    namespace: StringBuilder,
    name: StringBuilder,
    api_group: StringBuilder,
    api_version: StringBuilder,
    response_code: Int32Builder,
    response_reason: StringBuilder,
    response_message: StringBuilder,
    decision: StringBuilder,
    reason: StringBuilder,
    pod_security_violations: StringBuilder,
    annotations: StringBuilder,
    object_kind: StringBuilder,
    privileged: BooleanBuilder,
    host_pid: BooleanBuilder,
    host_network: BooleanBuilder,
    host_ipc: BooleanBuilder,
    host_paths: ListBuilder<StringBuilder>,
    capabilities_added: ListBuilder<StringBuilder>,
    images: ListBuilder<StringBuilder>,
    run_as_root: BooleanBuilder,
    allow_privilege_escalation: BooleanBuilder,
    read_only_root_fs: BooleanBuilder,
    seccomp_unconfined: BooleanBuilder,
    apparmor_unconfined: BooleanBuilder,
    service_account: StringBuilder,
    automount_token: BooleanBuilder,
    runtime_class: StringBuilder,
    exec_command: StringBuilder,
    rule_verbs: ListBuilder<StringBuilder>,
    rule_resources: ListBuilder<StringBuilder>,
    rule_api_groups: ListBuilder<StringBuilder>,
    rule_grants: ListBuilder<StringBuilder>,
    role_ref_kind: StringBuilder,
    role_ref_name: StringBuilder,
    subjects: ListBuilder<StringBuilder>,
    webhook_targets: ListBuilder<StringBuilder>,
    service_type: StringBuilder,
    secret_type: StringBuilder,
    token_expiration_seconds: Int64Builder,
    labels: StringBuilder,
    owner: StringBuilder,
    workload: StringBuilder,
    unknown_fields: StringBuilder,
    request_object: StringBuilder,
    response_object: StringBuilder,
}

impl Default for AuditBatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

fn list() -> ListBuilder<StringBuilder> {
    ListBuilder::new(StringBuilder::new())
}

fn append_list<S: AsRef<str>>(b: &mut ListBuilder<StringBuilder>, items: Option<&[S]>) {
    match items {
        Some(items) => {
            for item in items {
                b.values().append_value(item.as_ref());
            }
            b.append(true);
        }
        None => b.append(false),
    }
}

/// Room for a batch like the last one, plus an eighth: buffers that are big enough from the
/// start are not grown (and copied) value by value.
fn room(last: usize) -> usize {
    last + last / 8
}

/// Finishes a text column and leaves its builder sized for the next batch.
fn finish_text(b: &mut StringBuilder) -> ArrayRef {
    let done = b.finish();
    *b = StringBuilder::with_capacity(room(done.len()), room(done.value_data().len()));
    Arc::new(done)
}

/// Finishes a list column and leaves its builder sized for the next batch.
fn finish_list(b: &mut ListBuilder<StringBuilder>) -> ArrayRef {
    let done = b.finish();
    let values = done.values().as_string::<i32>();
    *b = ListBuilder::with_capacity(
        StringBuilder::with_capacity(room(values.len()), room(values.value_data().len())),
        room(done.len()),
    );
    Arc::new(done)
}

fn text(b: &mut StringBuilder, v: &Option<Cow<'_, str>>) {
    b.append_option(v.as_deref());
}

fn owned(b: &mut StringBuilder, v: &Option<String>) {
    b.append_option(v.as_deref());
}

impl AuditBatchBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        AuditBatchBuilder {
            len: 0,
            facts_absent: 0,
            cluster: StringBuilder::new(),
            ts: TimestampMicrosecondBuilder::new(),
            request_received_ts: TimestampMicrosecondBuilder::new(),
            audit_id: StringBuilder::new(),
            stage: StringBuilder::new(),
            level: StringBuilder::new(),
            verb: StringBuilder::new(),
            request_uri: StringBuilder::new(),
            user_name: StringBuilder::new(),
            user_groups: list(),
            impersonated_user: StringBuilder::new(),
            impersonated_groups: list(),
            source_ip: StringBuilder::new(),
            source_ips: list(),
            user_agent: StringBuilder::new(),
            resource: StringBuilder::new(),
            subresource: StringBuilder::new(),
            namespace: StringBuilder::new(),
            name: StringBuilder::new(),
            api_group: StringBuilder::new(),
            api_version: StringBuilder::new(),
            response_code: Int32Builder::new(),
            response_reason: StringBuilder::new(),
            response_message: StringBuilder::new(),
            decision: StringBuilder::new(),
            reason: StringBuilder::new(),
            pod_security_violations: StringBuilder::new(),
            annotations: StringBuilder::new(),
            object_kind: StringBuilder::new(),
            privileged: BooleanBuilder::new(),
            host_pid: BooleanBuilder::new(),
            host_network: BooleanBuilder::new(),
            host_ipc: BooleanBuilder::new(),
            host_paths: list(),
            capabilities_added: list(),
            images: list(),
            run_as_root: BooleanBuilder::new(),
            allow_privilege_escalation: BooleanBuilder::new(),
            read_only_root_fs: BooleanBuilder::new(),
            seccomp_unconfined: BooleanBuilder::new(),
            apparmor_unconfined: BooleanBuilder::new(),
            service_account: StringBuilder::new(),
            automount_token: BooleanBuilder::new(),
            runtime_class: StringBuilder::new(),
            exec_command: StringBuilder::new(),
            rule_verbs: list(),
            rule_resources: list(),
            rule_api_groups: list(),
            rule_grants: list(),
            role_ref_kind: StringBuilder::new(),
            role_ref_name: StringBuilder::new(),
            subjects: list(),
            webhook_targets: list(),
            service_type: StringBuilder::new(),
            secret_type: StringBuilder::new(),
            token_expiration_seconds: Int64Builder::new(),
            labels: StringBuilder::new(),
            owner: StringBuilder::new(),
            workload: StringBuilder::new(),
            unknown_fields: StringBuilder::new(),
            request_object: StringBuilder::new(),
            response_object: StringBuilder::new(),
        }
    }

    /// Rows appended since the last `finish`.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no row was appended since the last `finish`.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends one row.
    pub fn append(&mut self, row: &AuditRow<'_>) {
        self.len += 1;
        text(&mut self.cluster, &row.cluster);
        self.ts.append_value(row.ts_micros);
        self.request_received_ts
            .append_option(row.request_received_micros);
        text(&mut self.audit_id, &row.audit_id);
        text(&mut self.stage, &row.stage);
        text(&mut self.level, &row.level);
        text(&mut self.verb, &row.verb);
        text(&mut self.request_uri, &row.request_uri);
        text(&mut self.user_name, &row.user_name);
        append_list(&mut self.user_groups, row.user_groups.as_deref());
        text(&mut self.impersonated_user, &row.impersonated_user);
        append_list(
            &mut self.impersonated_groups,
            row.impersonated_groups.as_deref(),
        );
        self.source_ip.append_option(
            row.source_ips
                .as_ref()
                .and_then(|ips| ips.first())
                .map(|s| s.as_ref()),
        );
        append_list(&mut self.source_ips, row.source_ips.as_deref());
        text(&mut self.user_agent, &row.user_agent);
        text(&mut self.resource, &row.resource);
        text(&mut self.subresource, &row.subresource);
        text(&mut self.namespace, &row.namespace);
        text(&mut self.name, &row.name);
        text(&mut self.api_group, &row.api_group);
        text(&mut self.api_version, &row.api_version);
        self.response_code.append_option(row.response_code);
        text(&mut self.response_reason, &row.response_reason);
        text(&mut self.response_message, &row.response_message);
        text(&mut self.decision, &row.decision);
        text(&mut self.reason, &row.reason);
        text(
            &mut self.pod_security_violations,
            &row.pod_security_violations,
        );
        text(&mut self.annotations, &row.annotations);
        owned(&mut self.exec_command, &row.exec_command);
        match &row.facts {
            None => self.facts_absent += 1,
            Some(f) => self.append_facts(f),
        }
        owned(&mut self.unknown_fields, &row.unknown_fields);
        text(&mut self.request_object, &row.request_object);
        text(&mut self.response_object, &row.response_object);
    }

    /// Appends the null facts of the rows that had none, so that every column has every row.
    fn fill_absent_facts(&mut self) {
        let n = std::mem::take(&mut self.facts_absent);
        if n == 0 {
            return;
        }
        self.object_kind.append_nulls(n);
        self.privileged.append_nulls(n);
        self.host_pid.append_nulls(n);
        self.host_network.append_nulls(n);
        self.host_ipc.append_nulls(n);
        self.host_paths.append_nulls(n);
        self.capabilities_added.append_nulls(n);
        self.images.append_nulls(n);
        self.run_as_root.append_nulls(n);
        self.allow_privilege_escalation.append_nulls(n);
        self.read_only_root_fs.append_nulls(n);
        self.seccomp_unconfined.append_nulls(n);
        self.apparmor_unconfined.append_nulls(n);
        self.service_account.append_nulls(n);
        self.automount_token.append_nulls(n);
        self.runtime_class.append_nulls(n);
        self.rule_verbs.append_nulls(n);
        self.rule_resources.append_nulls(n);
        self.rule_api_groups.append_nulls(n);
        self.rule_grants.append_nulls(n);
        self.role_ref_kind.append_nulls(n);
        self.role_ref_name.append_nulls(n);
        self.subjects.append_nulls(n);
        self.webhook_targets.append_nulls(n);
        self.service_type.append_nulls(n);
        self.secret_type.append_nulls(n);
        self.token_expiration_seconds.append_nulls(n);
        self.labels.append_nulls(n);
        self.owner.append_nulls(n);
        self.workload.append_nulls(n);
    }

    /// Appends one row's object facts, after the null facts of the rows before it.
    fn append_facts(&mut self, f: &ObjectFacts) {
        self.fill_absent_facts();
        owned(&mut self.object_kind, &f.object_kind);
        self.privileged.append_option(f.privileged);
        self.host_pid.append_option(f.host_pid);
        self.host_network.append_option(f.host_network);
        self.host_ipc.append_option(f.host_ipc);
        append_list(&mut self.host_paths, f.host_paths.as_deref());
        append_list(
            &mut self.capabilities_added,
            f.capabilities_added.as_deref(),
        );
        append_list(&mut self.images, f.images.as_deref());
        self.run_as_root.append_option(f.run_as_root);
        self.allow_privilege_escalation
            .append_option(f.allow_privilege_escalation);
        self.read_only_root_fs.append_option(f.read_only_root_fs);
        self.seccomp_unconfined.append_option(f.seccomp_unconfined);
        self.apparmor_unconfined
            .append_option(f.apparmor_unconfined);
        owned(&mut self.service_account, &f.service_account);
        self.automount_token.append_option(f.automount_token);
        owned(&mut self.runtime_class, &f.runtime_class);
        append_list(&mut self.rule_verbs, f.rule_verbs.as_deref());
        append_list(&mut self.rule_resources, f.rule_resources.as_deref());
        append_list(&mut self.rule_api_groups, f.rule_api_groups.as_deref());
        append_list(&mut self.rule_grants, f.rule_grants.as_deref());
        owned(&mut self.role_ref_kind, &f.role_ref_kind);
        owned(&mut self.role_ref_name, &f.role_ref_name);
        append_list(&mut self.subjects, f.subjects.as_deref());
        append_list(&mut self.webhook_targets, f.webhook_targets.as_deref());
        owned(&mut self.service_type, &f.service_type);
        owned(&mut self.secret_type, &f.secret_type);
        self.token_expiration_seconds
            .append_option(f.token_expiration_seconds);
        owned(&mut self.labels, &f.labels);
        owned(&mut self.owner, &f.owner);
        owned(&mut self.workload, &f.workload);
    }

    /// Turns the rows appended so far into a batch and empties the builder.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        self.len = 0;
        self.fill_absent_facts();
        let columns: Vec<ArrayRef> = vec![
            finish_text(&mut self.cluster),
            Arc::new(self.ts.finish().with_timezone("UTC")),
            Arc::new(self.request_received_ts.finish().with_timezone("UTC")),
            finish_text(&mut self.audit_id),
            finish_text(&mut self.stage),
            finish_text(&mut self.level),
            finish_text(&mut self.verb),
            finish_text(&mut self.request_uri),
            finish_text(&mut self.user_name),
            finish_list(&mut self.user_groups),
            finish_text(&mut self.impersonated_user),
            finish_list(&mut self.impersonated_groups),
            finish_text(&mut self.source_ip),
            finish_list(&mut self.source_ips),
            finish_text(&mut self.user_agent),
            finish_text(&mut self.resource),
            finish_text(&mut self.subresource),
            finish_text(&mut self.namespace),
            finish_text(&mut self.name),
            finish_text(&mut self.api_group),
            finish_text(&mut self.api_version),
            Arc::new(self.response_code.finish()),
            finish_text(&mut self.response_reason),
            finish_text(&mut self.response_message),
            finish_text(&mut self.decision),
            finish_text(&mut self.reason),
            finish_text(&mut self.pod_security_violations),
            finish_text(&mut self.annotations),
            finish_text(&mut self.object_kind),
            Arc::new(self.privileged.finish()),
            Arc::new(self.host_pid.finish()),
            Arc::new(self.host_network.finish()),
            Arc::new(self.host_ipc.finish()),
            finish_list(&mut self.host_paths),
            finish_list(&mut self.capabilities_added),
            finish_list(&mut self.images),
            Arc::new(self.run_as_root.finish()),
            Arc::new(self.allow_privilege_escalation.finish()),
            Arc::new(self.read_only_root_fs.finish()),
            Arc::new(self.seccomp_unconfined.finish()),
            Arc::new(self.apparmor_unconfined.finish()),
            finish_text(&mut self.service_account),
            Arc::new(self.automount_token.finish()),
            finish_text(&mut self.runtime_class),
            finish_text(&mut self.exec_command),
            finish_list(&mut self.rule_verbs),
            finish_list(&mut self.rule_resources),
            finish_list(&mut self.rule_api_groups),
            finish_list(&mut self.rule_grants),
            finish_text(&mut self.role_ref_kind),
            finish_text(&mut self.role_ref_name),
            finish_list(&mut self.subjects),
            finish_list(&mut self.webhook_targets),
            finish_text(&mut self.service_type),
            finish_text(&mut self.secret_type),
            Arc::new(self.token_expiration_seconds.finish()),
            finish_text(&mut self.labels),
            finish_text(&mut self.owner),
            finish_text(&mut self.workload),
            finish_text(&mut self.unknown_fields),
            finish_text(&mut self.request_object),
            finish_text(&mut self.response_object),
        ];
        RecordBatch::try_new(audit_schema(), columns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};

    #[test]
    fn builder_produces_batches_with_the_audit_schema() {
        let mut b = AuditBatchBuilder::new();
        let row = AuditRow {
            ts_micros: 1_700_000_000_000_000,
            verb: Some("get".into()),
            source_ips: Some(vec!["10.0.0.1".into(), "1.2.3.4".into()]),
            ..Default::default()
        };
        b.append(&row);
        b.append(&AuditRow::default());
        let batch = b.finish().expect("columns match the schema");
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.schema(), audit_schema());
        let ip = batch
            .column_by_name("source_ip")
            .unwrap()
            .as_string::<i32>();
        assert_eq!(ip.value(0), "10.0.0.1");
        assert!(ip.is_null(1));
        assert!(b.is_empty());
    }

    #[test]
    fn facts_land_on_their_rows_between_rows_without_facts() {
        let mut b = AuditBatchBuilder::new();
        let with_facts = AuditRow {
            facts: Some(Box::new(ObjectFacts {
                privileged: Some(true),
                images: Some(vec!["nginx:1.25".into()]),
                role_ref_name: Some("cluster-admin".into()),
                ..Default::default()
            })),
            ..Default::default()
        };
        for row in [
            &AuditRow::default(),
            &AuditRow::default(),
            &with_facts,
            &AuditRow::default(),
        ] {
            b.append(row);
        }
        let batch = b.finish().expect("every column has every row");
        assert_eq!(batch.num_rows(), 4);
        let privileged = batch
            .column_by_name("privileged")
            .unwrap()
            .as_boolean()
            .iter()
            .collect::<Vec<_>>();
        assert_eq!(privileged, vec![None, None, Some(true), None]);
        let role = batch
            .column_by_name("role_ref_name")
            .unwrap()
            .as_string::<i32>();
        assert_eq!(
            role.iter().collect::<Vec<_>>(),
            vec![None, None, Some("cluster-admin"), None]
        );
        let images = batch.column_by_name("images").unwrap().as_list::<i32>();
        assert!(images.is_null(0) && images.is_null(3));
        assert_eq!(images.value(2).as_string::<i32>().value(0), "nginx:1.25");
        // A batch of rows without facts alone, after one that had them.
        b.append(&AuditRow::default());
        let batch = b.finish().expect("every column has every row");
        assert!(batch.column_by_name("labels").unwrap().is_null(0));
    }
}
