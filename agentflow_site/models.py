from django.db import models


class MetricSample(models.Model):
    """One snapshot of a host's metrics, taken every AGENTFLOW_HEALTH_SAMPLE_SECONDS by
    agentflow_site.observability.sampler and read by the health dashboard.

    `data` holds `c` (each counter's value as the host's processes recorded it), `o` (what to add
    to a counter so that it never goes down across a restart: only the counters that were reset),
    and `g` (gauges: runs queued and running, workers, database and Redis latency)."""

    host = models.CharField(max_length=255)
    period = models.DateTimeField(help_text="The start of the sampling interval it belongs to.")
    claim = models.CharField(max_length=32)
    taken_at = models.DateTimeField(null=True, blank=True, help_text="Null while being taken.")
    data = models.JSONField(default=dict)

    class Meta:
        verbose_name = "health dashboard"
        verbose_name_plural = "health dashboard"
        constraints = [
            # one sample per host and interval, whichever of its processes takes it
            models.UniqueConstraint(fields=["host", "period"], name="metric_sample_one_per_period")
        ]
        indexes = [
            # the dashboard's windows and the pruning
            models.Index(fields=["taken_at"], name="metric_sample_taken_at"),
        ]

    def __str__(self) -> str:
        return f"{self.host} at {self.period:%Y-%m-%d %H:%M:%S}"
