-- Today's class distribution over the scored catalogue (Athena / Trino SQL).
SELECT
  predicted_class,
  COUNT(*) AS items,
  ROUND(AVG(confidence), 4) AS mean_confidence
FROM scored
GROUP BY predicted_class
ORDER BY predicted_class
