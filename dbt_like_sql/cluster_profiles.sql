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

-- one pass over the buyers: per persona and (is_population) over all of them, each numeric feature's mean and
-- spread (the population's spread is the one used)
buyer_stats as (
    select
        cluster_label,
        grouping(cluster_label) = 1 as is_population,
        avg(avg_order_value) as avg_order_value, stddev_pop(avg_order_value) as avg_order_value_std,
        avg(items_per_order) as items_per_order, stddev_pop(items_per_order) as items_per_order_std,
        avg(return_rate) as return_rate, stddev_pop(return_rate) as return_rate_std,
        avg(cancel_rate) as cancel_rate, stddev_pop(cancel_rate) as cancel_rate_std,
        avg(order_count) as order_count, stddev_pop(order_count) as order_count_std,
        avg(mean_days_between_purchases) as mean_days_between_purchases,
        stddev_pop(mean_days_between_purchases) as mean_days_between_purchases_std,
        avg(days_since_first_order) as days_since_first_order,
        stddev_pop(days_since_first_order) as days_since_first_order_std
    from customers
    where is_buyer
    group by grouping sets ((cluster_label), ())
),

-- one row per persona (or the population) and numeric feature
measures as (
    select cluster_label, is_population, 'avg_order_value' as feature, avg_order_value as mean, avg_order_value_std as std
    from buyer_stats
    union all
    select cluster_label, is_population, 'items_per_order' as feature, items_per_order as mean, items_per_order_std as std
    from buyer_stats
    union all
    select cluster_label, is_population, 'return_rate' as feature, return_rate as mean, return_rate_std as std
    from buyer_stats
    union all
    select cluster_label, is_population, 'cancel_rate' as feature, cancel_rate as mean, cancel_rate_std as std
    from buyer_stats
    union all
    select cluster_label, is_population, 'order_count' as feature, order_count as mean, order_count_std as std
    from buyer_stats
    union all
    select cluster_label, is_population, 'mean_days_between_purchases' as feature, mean_days_between_purchases as mean, mean_days_between_purchases_std as std
    from buyer_stats
    union all
    select cluster_label, is_population, 'days_since_first_order' as feature, days_since_first_order as mean, days_since_first_order_std as std
    from buyer_stats
),

persona_measures as (
    select
        persona.cluster_label,
        persona.feature,
        persona.mean as persona_mean,
        population.mean as population_mean,
        (persona.mean - population.mean) / nullif(population.std, 0) as z
    from measures as persona
    join measures as population on population.feature = persona.feature and population.is_population
    where not persona.is_population
),

ranked_measures as (
    select
        *,
        row_number() over (partition by cluster_label order by abs(z) desc nulls last, feature) as rank
    from persona_measures
),

-- the buyers per persona and main_category or main_channel, in one pass
level_counts as (
    select cluster_label, main_category, main_channel, grouping(main_category) = 1 as is_channel, count(*) as buyers
    from customers
    where is_buyer
    group by grouping sets ((cluster_label, main_category), (cluster_label, main_channel))
),

levels as (
    select cluster_label, 'main_category' as feature, main_category as level, buyers
    from level_counts
    where not is_channel and main_category is not null
    union all
    select cluster_label, 'main_channel', main_channel, buyers
    from level_counts
    where is_channel and main_channel is not null
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
