-- One class's share of the scored catalogue: the input of that class's follow-up task.
SELECT
  recipe_id,
  cuisine,
  predicted_class,
  confidence
FROM scored
WHERE predicted_class = ?
ORDER BY recipe_id
