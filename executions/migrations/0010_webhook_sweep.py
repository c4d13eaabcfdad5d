from django.db import migrations


def schedule_sweep(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.get_or_create(
        name="agentflow-deliver-webhooks",
        defaults={"func": "executions.tasks.deliver_webhooks", "schedule_type": "C",
                  "cron": "* * * * *", "repeats": -1},
    )


def unschedule_sweep(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="agentflow-deliver-webhooks").delete()


class Migration(migrations.Migration):
    dependencies = [("executions", "0009_webhooksecret_webhookdelivery")]
    operations = [migrations.RunPython(schedule_sweep, unschedule_sweep)]
