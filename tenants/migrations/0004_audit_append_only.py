from django.db import migrations

FUNCTION = """
CREATE OR REPLACE FUNCTION agentflow_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only (%% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""
TRIGGER = """
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON tenants_auditevent
FOR EACH ROW EXECUTE FUNCTION agentflow_audit_append_only();
"""
DROP = """
DROP TRIGGER IF EXISTS audit_append_only ON tenants_auditevent;
DROP FUNCTION IF EXISTS agentflow_audit_append_only();
"""


def forwards(apps, schema_editor):
    # The database refuses changes to audit rows, whatever code asks (a bulk .update() or
    # .delete() included). PostgreSQL only: SQLite is for local use.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FUNCTION)
        schema_editor.execute(TRIGGER)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("tenants", "0003_budgets_and_key_rates")]
    operations = [migrations.RunPython(forwards, backwards)]
