-- Profile of every persona (cluster_label) in one segment version: size, revenue and what sets it apart.
-- Grain: one row per (as_of, cluster_label): the buyers' needs-based personas and the prospects' profile
-- personas ('prospect ...'). revenue = trailing 12-month completed spend (customer_features.spend_365d);
-- customer_share and revenue_share are within the version and sum to 1.
-- distinguishing_features (buyers' personas; null for prospects'): the persona's most common main_category
-- and main_channel with their share against the buyers' share, then the up to 3 features whose persona mean
-- lies farthest from the buyers' mean in buyer standard deviations, as 'feature: persona vs population (z)'.

with segments as (
    select as_of, customer_id, segment_version, cluster_label
    from customer_segments
    where as_of = getvariable('as_of')
),

features as (
    select *
    from customer_features
    where as_of = getvariable('as_of')
),

customers as (
    select
        segments.*,
        coalesce(features.spend_365d, 0) as revenue,
        features.frequency is not null as is_buyer,
        features.avg_order_value, features.items_per_order, features.return_rate, features.cancel_rate,
        features.order_count, features.mean_days_between_purchases, features.days_since_first_order,
        features.main_category, features.main_channel
    from segments
    left join features using (customer_id)
),

totals as (
    select
        cluster_label,
        any_value(as_of) as as_of,
        any_value(segment_version) as segment_version,
        count(*) as customers,
        sum(revenue) as revenue
    from customers
    group by cluster_label
),

-- one row per buyer and numeric feature
measures as (
    select cluster_label, 'avg_order_value' as feature, avg_order_value as value from customers where is_buyer
    union all
    select cluster_label, 'items_per_order', items_per_order from customers where is_buyer
    union all
    select cluster_label, 'return_rate', return_rate from customers where is_buyer
    union all
    select cluster_label, 'cancel_rate', cancel_rate from customers where is_buyer
    union all
    select cluster_label, 'order_count', order_count from customers where is_buyer
    union all
    select cluster_label, 'mean_days_between_purchases', mean_days_between_purchases from customers where is_buyer
    union all
    select cluster_label, 'days_since_first_order', days_since_first_order from customers where is_buyer
),

population as (
    select feature, avg(value) as population_mean, stddev_pop(value) as population_std
    from measures
    group by feature
),

persona_measures as (
    select
        cluster_label,
        feature,
        avg(value) as persona_mean,
        population_mean,
        (avg(value) - population_mean) / nullif(population_std, 0) as z
    from measures
    join population using (feature)
    group by cluster_label, feature, population_mean, population_std
),

ranked_measures as (
    select
        *,
        row_number() over (partition by cluster_label order by abs(z) desc nulls last, feature) as rank
    from persona_measures
),

levels as (
    select cluster_label, 'main_category' as feature, main_category as level, count(*) as buyers
    from customers
    where is_buyer and main_category is not null
    group by all
    union all
    select cluster_label, 'main_channel', main_channel, count(*)
    from customers
    where is_buyer and main_channel is not null
    group by all
),

population_levels as (
    select feature, level, sum(buyers) / sum(sum(buyers)) over (partition by feature) as population_share
    from levels
    group by feature, level
),

top_levels as (
    select
        cluster_label,
        feature,
        level,
        buyers / sum(buyers) over (partition by cluster_label, feature) as persona_share,
        row_number() over (partition by cluster_label, feature order by buyers desc, level) as rank
    from levels
),

described as (
    select cluster_label, 0 as part, top_levels.feature as sort_key,
        format('{} = {}: {:.0f}% vs {:.0f}%', top_levels.feature, level, 100 * persona_share,
               100 * population_share) as text
    from top_levels
    join population_levels using (feature, level)
    where rank = 1
    union all
    select cluster_label, 1, format('{:02d}', rank),
        format('{}: {:.2f} vs {:.2f} (z {:+.1f})', feature, persona_mean, population_mean, z)
    from ranked_measures
    where rank <= 3 and z is not null
),

distinguishing as (
    select cluster_label, string_agg(text, '; ' order by part, sort_key) as distinguishing_features
    from described
    group by cluster_label
)

select
    as_of,
    segment_version,
    cluster_label,
    customers,
    customers / sum(customers) over () as customer_share,
    revenue,
    revenue / nullif(sum(revenue) over (), 0) as revenue_share,
    distinguishing_features
from totals
left join distinguishing using (cluster_label)
order by customers desc, cluster_label
