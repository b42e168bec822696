-- Yesterday's impressions: each recipe shown to a user, its features then, and what the user did.
-- BigQuery Standard SQL; the same text runs on DuckDB locally (transpiled by sqlglot).
SELECT
  event_date,
  event_id,
  user_id,
  recipe_id,
  CAST(cuisine AS STRING) AS cuisine,
  cook_minutes,
  ingredients,
  rating,
  photo_score,
  views_7d,
  saves_7d,
  CAST(outcome AS STRING) AS outcome
FROM recipes.events
WHERE event_date = DATE_SUB(CAST(@run_date AS DATE), INTERVAL 1 DAY)
