-- Pools that can be paused and bounded: the row is the truth, BullMQ's queue (paused, global concurrency) follows it
ALTER TABLE "Pool" ADD COLUMN     "maxConcurrency" INTEGER,
ADD COLUMN     "paused" BOOLEAN NOT NULL DEFAULT false;
