-- Recurring task schedules, and the schedule that created a task
-- AlterTable
ALTER TABLE "Task" ADD COLUMN     "scheduleId" TEXT;

-- CreateTable
CREATE TABLE "Schedule" (
    "tenantId" TEXT NOT NULL,
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "task" JSONB NOT NULL,
    "every" INTEGER,
    "cron" TEXT,
    "timezone" TEXT,
    "paused" BOOLEAN NOT NULL DEFAULT false,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Schedule_pkey" PRIMARY KEY ("tenantId","id")
);

-- CreateIndex
CREATE INDEX "Schedule_tenantId_createdAt_id_idx" ON "Schedule"("tenantId", "createdAt", "id");

-- CreateIndex
CREATE UNIQUE INDEX "Schedule_tenantId_name_key" ON "Schedule"("tenantId", "name");

-- CreateIndex
CREATE INDEX "Task_tenantId_scheduleId_createdAt_idx" ON "Task"("tenantId", "scheduleId", "createdAt");

