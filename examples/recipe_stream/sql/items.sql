-- Today's catalogue snapshot: every recipe the feed may show, with the features the model reads.
SELECT
  snapshot_date,
  recipe_id,
  CAST(cuisine AS STRING) AS cuisine,
  cook_minutes,
  ingredients,
  rating,
  photo_score,
  views_7d,
  saves_7d
FROM recipes.items
WHERE snapshot_date = CAST(@run_date AS DATE)
