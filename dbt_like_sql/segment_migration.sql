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

both_versions as (
    select customer_segments.*
    from customer_segments
    where as_of = getvariable('as_of')
       or as_of = (select previous_as_of from previous_version)
),

-- one row per version, customer and segment type
assignments as (
    select as_of, customer_id, 'rfm_segment' as segment_type, rfm_segment as segment from both_versions
    union all
    select as_of, customer_id, 'cluster_label', cluster_label from both_versions
    union all
    select as_of, customer_id, 'value_tier', value_tier from both_versions
    union all
    select as_of, customer_id, 'lifecycle_stage', lifecycle_stage from both_versions
),

current_assignments as (
    select * from assignments where as_of = getvariable('as_of')
),

previous_assignments as (
    select * from assignments where as_of < getvariable('as_of')
),

moves as (
    select
        coalesce(current_assignments.segment_type, previous_assignments.segment_type) as segment_type,
        case
            when previous_assignments.customer_id is null then '(new)'
            else coalesce(previous_assignments.segment, '(none)')
        end as from_segment,
        case
            when current_assignments.customer_id is null then '(gone)'
            else coalesce(current_assignments.segment, '(none)')
        end as to_segment
    from current_assignments
    full join previous_assignments
        on current_assignments.customer_id = previous_assignments.customer_id
        and current_assignments.segment_type = previous_assignments.segment_type
),

transitions as (
    select segment_type, from_segment, to_segment, count(*) as customers
    from moves
    group by segment_type, from_segment, to_segment
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
