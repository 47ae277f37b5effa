-- CreateSchema
CREATE SCHEMA IF NOT EXISTS "public";

-- CreateTable
CREATE TABLE "Tenant" (
    "id" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Tenant_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Pool" (
    "tenantId" TEXT NOT NULL,
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "desiredWorkers" INTEGER NOT NULL DEFAULT 0,
    "status" TEXT NOT NULL DEFAULT 'active',
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Pool_pkey" PRIMARY KEY ("tenantId","id")
);

-- CreateTable
CREATE TABLE "Worker" (
    "tenantId" TEXT NOT NULL,
    "id" TEXT NOT NULL,
    "poolId" TEXT NOT NULL,
    "status" TEXT NOT NULL DEFAULT 'idle',
    "detail" TEXT,
    "nodeId" TEXT,
    "version" TEXT,
    "lastHeartbeatAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Worker_pkey" PRIMARY KEY ("tenantId","id")
);

-- CreateTable
CREATE TABLE "Task" (
    "id" TEXT NOT NULL,
    "tenantId" TEXT NOT NULL,
    "poolId" TEXT NOT NULL,
    "type" TEXT NOT NULL,
    "payload" JSONB NOT NULL DEFAULT '{}',
    "status" TEXT NOT NULL,
    "priority" INTEGER NOT NULL DEFAULT 0,
    "maxAttempts" INTEGER NOT NULL DEFAULT 1,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "timeoutMs" INTEGER,
    "result" JSONB,
    "error" JSONB,
    "workerId" TEXT,
    "idempotencyKey" TEXT,
    "requestHash" TEXT,
    "workflowId" TEXT,
    "stepKey" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,
    "queuedAt" TIMESTAMP(3),
    "startedAt" TIMESTAMP(3),
    "finishedAt" TIMESTAMP(3),

    CONSTRAINT "Task_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Workflow" (
    "id" TEXT NOT NULL,
    "tenantId" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "status" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,
    "finishedAt" TIMESTAMP(3),

    CONSTRAINT "Workflow_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "WorkflowStep" (
    "workflowId" TEXT NOT NULL,
    "key" TEXT NOT NULL,
    "position" INTEGER NOT NULL,
    "type" TEXT NOT NULL,
    "payload" JSONB NOT NULL DEFAULT '{}',
    "dependsOn" TEXT[],
    "status" TEXT NOT NULL DEFAULT 'pending',
    "taskId" TEXT,

    CONSTRAINT "WorkflowStep_pkey" PRIMARY KEY ("workflowId","key")
);

-- CreateTable
CREATE TABLE "Event" (
    "tenantId" TEXT NOT NULL,
    "namespace" TEXT NOT NULL,
    "room" TEXT NOT NULL,
    "seq" INTEGER NOT NULL,
    "eventId" TEXT NOT NULL,
    "type" TEXT NOT NULL,
    "data" JSONB NOT NULL,
    "ts" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Event_pkey" PRIMARY KEY ("tenantId","namespace","room","seq")
);

-- CreateTable
CREATE TABLE "RoomSequence" (
    "tenantId" TEXT NOT NULL,
    "namespace" TEXT NOT NULL,
    "room" TEXT NOT NULL,
    "seq" INTEGER NOT NULL DEFAULT 0,
    "epoch" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "RoomSequence_pkey" PRIMARY KEY ("tenantId","namespace","room")
);

-- CreateIndex
CREATE INDEX "Pool_tenantId_createdAt_id_idx" ON "Pool"("tenantId", "createdAt", "id");

-- CreateIndex
CREATE UNIQUE INDEX "Pool_tenantId_name_key" ON "Pool"("tenantId", "name");

-- CreateIndex
CREATE INDEX "Worker_tenantId_poolId_idx" ON "Worker"("tenantId", "poolId");

-- CreateIndex
CREATE INDEX "Task_tenantId_createdAt_id_idx" ON "Task"("tenantId", "createdAt", "id");

-- CreateIndex
CREATE INDEX "Task_tenantId_status_createdAt_idx" ON "Task"("tenantId", "status", "createdAt");

-- CreateIndex
CREATE INDEX "Task_tenantId_poolId_createdAt_idx" ON "Task"("tenantId", "poolId", "createdAt");

-- CreateIndex
CREATE INDEX "Task_workflowId_idx" ON "Task"("workflowId");

-- CreateIndex
CREATE UNIQUE INDEX "Task_tenantId_idempotencyKey_key" ON "Task"("tenantId", "idempotencyKey");

-- CreateIndex
CREATE INDEX "Workflow_tenantId_createdAt_id_idx" ON "Workflow"("tenantId", "createdAt", "id");

-- CreateIndex
CREATE UNIQUE INDEX "WorkflowStep_taskId_key" ON "WorkflowStep"("taskId");

-- CreateIndex
CREATE INDEX "Event_ts_idx" ON "Event"("ts");

-- AddForeignKey
ALTER TABLE "Pool" ADD CONSTRAINT "Pool_tenantId_fkey" FOREIGN KEY ("tenantId") REFERENCES "Tenant"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Worker" ADD CONSTRAINT "Worker_tenantId_poolId_fkey" FOREIGN KEY ("tenantId", "poolId") REFERENCES "Pool"("tenantId", "id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "WorkflowStep" ADD CONSTRAINT "WorkflowStep_workflowId_fkey" FOREIGN KEY ("workflowId") REFERENCES "Workflow"("id") ON DELETE CASCADE ON UPDATE CASCADE;

