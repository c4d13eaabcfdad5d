from django.db import migrations


def create_checkpoint_tables(apps, schema_editor):
    from executions.checkpoints import setup_tables

    connection = schema_editor.connection
    setup_tables(connection.settings_dict, connection.vendor)


class Migration(migrations.Migration):
    dependencies = [("executions", "0003_background_runs")]
    operations = [migrations.RunPython(create_checkpoint_tables, migrations.RunPython.noop)]
