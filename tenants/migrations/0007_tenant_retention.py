from django.db import migrations, models

# The append-only trigger (0004) gains one way through, for the retention job alone
# (executions/retention.py): a DELETE in a transaction that said
# `SELECT set_config('agentflow.audit_prune', 'on', true)`. Updates stay refused, and so does
# any delete elsewhere. A setting scoped to the transaction needs no superuser (unlike
# session_replication_role) and no ACCESS EXCLUSIVE lock (unlike ALTER TABLE … DISABLE TRIGGER).
PRUNABLE = """
CREATE OR REPLACE FUNCTION agentflow_audit_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('agentflow.audit_prune', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit events are append-only (%% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""
STRICT = """
CREATE OR REPLACE FUNCTION agentflow_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only (%% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PRUNABLE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(STRICT)


class Migration(migrations.Migration):
    dependencies = [("tenants", "0006_staff_membership")]

    operations = [
        migrations.AddField(
            model_name="tenant",
            name="retention_days",
            field=models.PositiveIntegerField(
                blank=True,
                help_text="days ended runs (traces, events, files, checkpoints) are kept; 0: for "
                "ever; empty: AGENTFLOW_RETENTION_DAYS",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="tenant",
            name="audit_retention_days",
            field=models.PositiveIntegerField(
                blank=True,
                help_text="days audit events are kept; 0: for ever; empty: "
                "AGENTFLOW_AUDIT_RETENTION_DAYS",
                null=True,
            ),
        ),
        migrations.RunPython(forwards, backwards),
    ]
