-- Autoscaling: when targetQueuedPerWorker is set, the hub sets desiredWorkers from the pool's queue depth,
-- within minWorkers and maxWorkers (null: no bound)
ALTER TABLE "Pool" ADD COLUMN "minWorkers" INTEGER,
ADD COLUMN "maxWorkers" INTEGER,
ADD COLUMN "targetQueuedPerWorker" INTEGER;
