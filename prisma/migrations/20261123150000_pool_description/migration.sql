-- AlterTable
ALTER TABLE "Pool" ADD COLUMN     "description" TEXT;

