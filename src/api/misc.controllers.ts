import { Controller, Get, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiTags, ApiPropertyOptional } from '@nestjs/swagger';
import { HealthCheckService, TypeOrmHealthIndicator } from '@nestjs/terminus';
import { IsInt, IsOptional, IsString, Matches, Max, Min } from 'class-validator';
import { Type } from 'class-transformer';
import { Public, TenantId } from './auth.js';
import { EventsService } from './events.service.js';

export class EventsQuery {
  @ApiPropertyOptional({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }) @IsOptional() @Type(() => Number) @IsInt() @Min(0) @Max(Number.MAX_SAFE_INTEGER) since?: number;
  @ApiPropertyOptional() @IsOptional() @Type(() => Number) @IsInt() @Min(1) @Max(1000) limit?: number;
  @ApiPropertyOptional() @IsOptional() @IsString() @Matches(/^[a-z]+:[0-9a-f-]+$/) subject?: string;
}

@ApiTags('events')
@ApiBearerAuth()
@Controller('v1/events')
export class EventsController {
  constructor(private readonly events: EventsService) {}

  /** The tenant's events with seq > since (oldest first), optionally for one subject. */
  @Get()
  async list(@TenantId() t: string, @Query() q: EventsQuery) {
    return { items: await this.events.list(t, q.since ?? 0, q.limit ?? 100, q.subject) };
  }
}

@ApiTags('health')
@Controller()
export class HealthController {
  constructor(private readonly health: HealthCheckService, private readonly db: TypeOrmHealthIndicator) {}

  /** Liveness: the process answers. */
  @Get('healthz') @Public()
  live() { return { status: 'ok' }; }

  /** Readiness: the database answers within a second. */
  @Get('readyz') @Public()
  ready() { return this.health.check([() => this.db.pingCheck('database', { timeout: 1000 })]); }
}
