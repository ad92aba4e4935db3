-- Customers who moved between segments from the previous segment version to this one.
-- Grain: one row per (as_of, segment_type, from_segment, to_segment); segment_type is
-- rfm_segment, cluster_label, value_tier or lifecycle_stage.
-- previous_as_of = the latest as_of before this one in customer_segments; the table has
-- no rows for a version without a previous one. from_segment '(new)' = customer not in
-- the previous version, to_segment '(gone)' = customer no longer in this one, '(none)' =
-- no segment of that type (prospects have no value tier). share_of_from = customers /
-- all customers of from_segment, so each from_segment's shares sum to 1.

with previous_version as (
    select max(as_of) as previous_as_of
    from customer_segments
    where as_of < getvariable('as_of')
),

current_version as (
    select customer_id, rfm_segment, cluster_label, value_tier, lifecycle_stage
    from customer_segments
    where as_of = getvariable('as_of')
),

previous as (
    select customer_id, rfm_segment, cluster_label, value_tier, lifecycle_stage
    from customer_segments
    where as_of = (select previous_as_of from previous_version)
),

-- one row per customer in either version: both versions' segments side by side
pairs as materialized (
    select
        previous.customer_id is null as is_new,
        current_version.customer_id is null as is_gone,
        previous.rfm_segment as from_rfm, current_version.rfm_segment as to_rfm,
        previous.cluster_label as from_cluster, current_version.cluster_label as to_cluster,
        previous.value_tier as from_tier, current_version.value_tier as to_tier,
        previous.lifecycle_stage as from_stage, current_version.lifecycle_stage as to_stage
    from current_version
    full join previous on current_version.customer_id = previous.customer_id
),

pair_counts as materialized (
    select is_new, is_gone, from_rfm, to_rfm, from_cluster, to_cluster, from_tier, to_tier, from_stage, to_stage,
        count(*) as customers
    from pairs
    group by all
),

moves as (
    select 'rfm_segment' as segment_type, from_rfm as from_value, to_rfm as to_value, is_new, is_gone, customers
    from pair_counts
    union all
    select 'cluster_label', from_cluster, to_cluster, is_new, is_gone, customers from pair_counts
    union all
    select 'value_tier', from_tier, to_tier, is_new, is_gone, customers from pair_counts
    union all
    select 'lifecycle_stage', from_stage, to_stage, is_new, is_gone, customers from pair_counts
),

transitions as (
    select
        segment_type,
        case when is_new then '(new)' else coalesce(from_value, '(none)') end as from_segment,
        case when is_gone then '(gone)' else coalesce(to_value, '(none)') end as to_segment,
        sum(customers)::bigint as customers
    from moves
    group by all
)

select
    getvariable('as_of') as as_of,
    previous_version.previous_as_of,
    transitions.segment_type,
    transitions.from_segment,
    transitions.to_segment,
    transitions.from_segment <> transitions.to_segment as moved,
    transitions.customers,
    transitions.customers
        / sum(transitions.customers) over (partition by transitions.segment_type, transitions.from_segment)
        as share_of_from
from transitions
cross join previous_version
where previous_version.previous_as_of is not null
order by segment_type, from_segment, customers desc, to_segment
