"""URL converters for the API's opaque, prefixed ids: a malformed id is an unmatched URL (404)."""

KEY_PREFIX = r"[0-9A-Za-z]{1,64}"


class _PrefixedId:
    regex = ""

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


class WorkflowId(_PrefixedId):
    regex = r"wf_[0-9a-f]{1,40}"


class SourceId(_PrefixedId):
    regex = r"src_[0-9a-f]{1,40}"


class ExecutionId(_PrefixedId):
    regex = r"exec_[0-9a-f]{1,40}"


class ScheduleId(_PrefixedId):
    regex = r"sch_[0-9a-f]{1,40}"


class KeyPrefix(_PrefixedId):
    """An API key's public handle (letters and digits): `/keys/%00` is a 404, not a query."""

    regex = KEY_PREFIX


def register() -> None:
    from django.urls import register_converter

    register_converter(WorkflowId, "wf")
    register_converter(SourceId, "src")
    register_converter(ExecutionId, "exec")
    register_converter(KeyPrefix, "keyprefix")
    register_converter(ScheduleId, "sch")
