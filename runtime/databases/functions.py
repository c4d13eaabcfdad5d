"""Which functions a db node's SELECT may call: built-in allow-lists, plus what the operator adds.

An allow-list, not a deny-list: a function that runs a query string (`query_to_xml`, `ts_stat`,
`dblink`), reaches files, other sessions or servers (`pg_read_file`, `pg_terminate_backend`,
`lo_import`, `LOAD_FILE`), sleeps, takes session locks or changes settings is simply not on
it, and neither is any function of the tenant's database the operator has not named. The lists
hold what reports and lookups use: aggregates, window functions, string, math, date/time, JSON,
array, range, text search, network and UUID functions, and the casts written as calls.
"""

from __future__ import annotations

from dataclasses import dataclass

_PG_AGGREGATES = """
avg bit_and bit_or bit_xor bool_and bool_or count every max min sum any_value
array_agg string_agg json_agg jsonb_agg json_agg_strict jsonb_agg_strict json_object_agg
jsonb_object_agg json_object_agg_strict jsonb_object_agg_strict json_object_agg_unique
jsonb_object_agg_unique json_object_agg_unique_strict jsonb_object_agg_unique_strict xmlagg
range_agg range_intersect_agg corr covar_pop covar_samp regr_avgx regr_avgy regr_count
regr_intercept regr_r2 regr_slope regr_sxx regr_sxy regr_syy stddev stddev_pop stddev_samp
variance var_pop var_samp mode percentile_cont percentile_disc
row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value nth_value
"""
_PG_MATH = """
abs cbrt ceil ceiling degrees div exp factorial floor gcd lcm ln log log10 min_scale mod pi
power pow radians round scale sign sqrt trim_scale trunc width_bucket random random_normal
acos acosd asin asind atan atand atan2 atan2d cos cosd cot cotd sin sind tan tand sinh cosh tanh
asinh acosh atanh erf erfc num_nonnulls num_nulls generate_series generate_subscripts
"""
_PG_STRINGS = """
ascii bit_length btrim char_length character_length chr concat concat_ws format initcap left
length lower lpad ltrim md5 normalize is_normalized octet_length overlay parse_ident position
quote_ident quote_literal quote_nullable regexp_count regexp_instr regexp_like regexp_match
regexp_matches regexp_replace regexp_split_to_array regexp_split_to_table regexp_substr repeat
replace reverse right rpad rtrim split_part starts_with string_to_array string_to_table strpos
substr substring to_ascii to_hex translate unistr upper casefold encode decode convert
convert_from convert_to sha224 sha256 sha384 sha512 crc32 crc32c get_bit get_byte set_bit
set_byte bit_count similar_to_escape similar_escape pg_collation_for to_char to_date to_number
to_timestamp
"""
_PG_TIME = """
age clock_timestamp date_add date_bin date_part date_subtract date_trunc extract isfinite
justify_days justify_hours justify_interval make_date make_interval make_time make_timestamp
make_timestamptz now statement_timestamp timeofday transaction_timestamp timezone overlaps
"""
_PG_JSON = """
to_json to_jsonb array_to_json row_to_json json_build_array jsonb_build_array json_build_object
jsonb_build_object json_object jsonb_object json_array_elements jsonb_array_elements
json_array_elements_text jsonb_array_elements_text json_array_length jsonb_array_length
json_each jsonb_each json_each_text jsonb_each_text json_extract_path jsonb_extract_path
json_extract_path_text jsonb_extract_path_text json_object_keys jsonb_object_keys
json_populate_record jsonb_populate_record json_populate_recordset jsonb_populate_recordset
json_to_record jsonb_to_record json_to_recordset jsonb_to_recordset json_strip_nulls
jsonb_strip_nulls jsonb_set jsonb_set_lax jsonb_insert jsonb_path_exists jsonb_path_match
jsonb_path_query jsonb_path_query_array jsonb_path_query_first jsonb_path_exists_tz
jsonb_path_match_tz jsonb_path_query_tz jsonb_path_query_array_tz jsonb_path_query_first_tz
jsonb_pretty json_typeof jsonb_typeof
"""
_PG_ARRAYS_AND_RANGES = """
array_append array_cat array_dims array_fill array_length array_lower array_ndims
array_position array_positions array_prepend array_remove array_replace array_reverse
array_sample array_shuffle array_sort array_to_string array_upper cardinality trim_array unnest
isempty lower_inc upper_inc lower_inf upper_inf range_merge multirange int4range int8range
numrange tsrange tstzrange daterange int4multirange int8multirange nummultirange
tsmultirange tstzmultirange datemultirange enum_first enum_last enum_range
"""
_PG_OTHER = """
to_tsvector to_tsquery plainto_tsquery phraseto_tsquery websearch_to_tsquery ts_rank ts_rank_cd
ts_headline setweight strip tsvector_to_array array_to_tsvector numnode querytree ts_delete
ts_filter gen_random_uuid uuidv4 uuidv7 uuid_extract_timestamp uuid_extract_version
abbrev broadcast family host hostmask inet_merge inet_same_family masklen netmask network
set_masklen area center diameter height width radius npoints isclosed isopen point box circle
lseg polygon path line xmlcomment xmlconcat xmlforest xmlpi xmlroot xmlexists xmltext xpath
xpath_exists xml_is_well_formed xml_is_well_formed_document xml_is_well_formed_content
pg_typeof system_user
bool int2 int4 int8 float4 float8 numeric text varchar bpchar char name date time timetz
timestamp timestamptz interval json jsonb uuid inet cidr macaddr money bit varbit bytea
"""
_PG_ALL = (_PG_AGGREGATES, _PG_MATH, _PG_STRINGS, _PG_TIME, _PG_JSON, _PG_ARRAYS_AND_RANGES)
PG_FUNCTIONS = frozenset(" ".join((*_PG_ALL, _PG_OTHER)).split())
"""Built-in PostgreSQL functions a db node may call, unqualified or as `pg_catalog.name`."""
PG_CATALOG = "pg_catalog"
PG_TABLESAMPLE_METHODS = frozenset({"bernoulli", "system", "system_rows", "system_time"})

_MYSQL_FUNCTIONS = """
avg bit_and bit_or bit_xor count group_concat json_arrayagg json_objectagg max min std stddev
stddev_pop stddev_samp sum var_pop var_samp variance
row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value
nth_value
abs acos asin atan atan2 ceil ceiling conv cos cot crc32 degrees div exp floor greatest least
ln log log10 log2 mod pi pow power radians rand round sign sin sqrt tan truncate
ascii bin bit_length char char_length character_length concat concat_ws elt export_set field
find_in_set format from_base64 hex insert instr lcase left length locate lower lpad ltrim
make_set mid oct octet_length ord position quote regexp_instr regexp_like regexp_replace
regexp_substr repeat replace reverse right rpad rtrim soundex space strcmp substr substring
substring_index to_base64 trim ucase unhex upper weight_string md5 sha sha1 sha2
adddate addtime convert_tz curdate current_date current_time current_timestamp curtime
date date_add date_format date_sub datediff day dayname dayofmonth dayofweek dayofyear
extract from_days from_unixtime get_format hour last_day localtime localtimestamp makedate
maketime microsecond minute month monthname now period_add period_diff quarter sec_to_time
second str_to_date subdate subtime sysdate time time_format time_to_sec timediff timestamp
timestampadd timestampdiff to_days to_seconds unix_timestamp utc_date utc_time utc_timestamp
week weekday weekofyear year yearweek
json_array json_array_append json_array_insert json_contains json_contains_path json_depth
json_extract json_insert json_keys json_length json_merge json_merge_patch
json_merge_preserve json_object json_overlaps json_pretty json_quote json_remove
json_replace json_search json_set json_table json_type json_unquote json_valid json_value
json_exists json_query json_detailed json_compact json_loose json_equals json_normalize
cast convert coalesce if ifnull isnull nullif interval uuid uuid_short binary chr to_char sformat
natural_sort_key nvl nvl2
"""
_MYSQL_SYNTAX = """
and or not xor in exists select from where on using join as values over partition union
intersect except all any some distinct distinctrow like regexp rlike between is case when then
else by having limit with lateral row match index key for dual of
signed unsigned decimal dec double float real integer int datetime nchar date time char binary
"""
MYSQL_FUNCTIONS = frozenset(_MYSQL_FUNCTIONS.split())
"""Built-in MySQL/MariaDB functions a db node may call (names compared in lower case)."""
MYSQL_SYNTAX_WORDS = frozenset(_MYSQL_SYNTAX.split())
"""Keywords that may stand, unquoted, before `(` without being a call (`IN (`,
`DECIMAL(10, 2)`); reserved words or type names, so no function of the database is named so."""


@dataclass(frozen=True, slots=True)
class SQLPolicy:
    """What the operator lets db nodes do beyond the built-in lists; a spec cannot change it."""

    pg_functions: frozenset[str] = frozenset()
    """More PostgreSQL functions (AGENTFLOW_PG_ALLOWED_FUNCTIONS): `name` may be called
    unqualified or as `pg_catalog.name`; `schema.name` only so qualified."""
    pg_schemas: frozenset[str] = frozenset()
    """PostgreSQL schemas any of whose functions and operators may be called, schema-qualified
    (AGENTFLOW_PG_ALLOWED_SCHEMAS), e.g. a reporting schema of the operator's own functions."""
    mysql_functions: frozenset[str] = frozenset()
    """More MySQL/MariaDB functions (AGENTFLOW_MYSQL_ALLOWED_FUNCTIONS): `name` (any case)
    unqualified, or `db.name` for a stored function so qualified."""
    allow_privileged_roles: bool = False
    """Let db nodes run as a PostgreSQL superuser (or a member of pg_read_server_files,
    pg_write_server_files, pg_execute_server_program) or a MySQL user with FILE, SUPER or ALL
    PRIVILEGES on *.* (AGENTFLOW_ALLOW_PRIVILEGED_DB_ROLES). Off: such a source fails its test
    and every db node that uses it."""

    def pg_allows(self, schema: str | None, name: str) -> bool:
        """Whether `schema.name(...)` (or `name(...)` when schema is None) may be called."""
        if schema is None or schema == PG_CATALOG:
            return name in PG_FUNCTIONS or name in self.pg_functions
        return schema in self.pg_schemas or f"{schema}.{name}" in self.pg_functions

    def pg_allows_schema(self, schema: str) -> bool:
        return schema == PG_CATALOG or schema in self.pg_schemas

    def mysql_allows(self, schema: str | None, name: str) -> bool:
        if schema is None:
            lower = name.lower()
            return lower in MYSQL_FUNCTIONS or lower in self.mysql_functions
        return f"{schema}.{name}".lower() in self.mysql_functions


DEFAULT_POLICY = SQLPolicy()


def sql_policy(
    *,
    pg_functions: list[str] | tuple[str, ...] = (),
    pg_schemas: list[str] | tuple[str, ...] = (),
    mysql_functions: list[str] | tuple[str, ...] = (),
    allow_privileged_roles: bool = False,
) -> SQLPolicy:
    """A policy from the operator's lists (MySQL names lower-cased, as MySQL compares them)."""
    return SQLPolicy(
        pg_functions=frozenset(n.strip() for n in pg_functions if n.strip()),
        pg_schemas=frozenset(n.strip() for n in pg_schemas if n.strip()),
        mysql_functions=frozenset(n.strip().lower() for n in mysql_functions if n.strip()),
        allow_privileged_roles=allow_privileged_roles,
    )
