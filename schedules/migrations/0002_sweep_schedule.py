from django.db import migrations


def schedule_sweep(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.get_or_create(
        name="agentflow-fire-schedules",
        defaults={"func": "schedules.tasks.fire_due_schedules", "schedule_type": "C",
                  "cron": "* * * * *", "repeats": -1},
    )


def unschedule_sweep(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="agentflow-fire-schedules").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("schedules", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]
    operations = [migrations.RunPython(schedule_sweep, unschedule_sweep)]
