/**
 * The NestJS shell: thin controllers over services, one exception filter, one auth guard.
 */
import { DynamicModule, Module, ValidationPipe } from '@nestjs/common';
import { APP_FILTER, APP_GUARD, APP_PIPE } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { TerminusModule } from '@nestjs/terminus';
import type { Config } from './config/config.js';
import { CONFIG } from './api/tokens.js';
import { ENTITIES } from './persistence/entities.js';
import { MIGRATIONS } from './persistence/migrations/index.js';
import { Authenticator, AuthGuard } from './api/auth.js';
import { InputGuard } from './api/validate.js';
import { ProblemFilter } from './api/errors.js';
import { EventsService } from './api/events.service.js';
import { TenantsController } from './api/tenants.controller.js';
import { HostsController, HostsService } from './api/hosts.js';
import { EventsController, HealthController } from './api/misc.controllers.js';
import { ImagesController, ImagesService } from './api/images.js';
import { VmsController, VmsService } from './api/vms.js';
import { DomainsController, DomainsService } from './api/domains.js';
import { RuntimeService } from './api/runtime.service.js';
import { TechniquesController } from './api/techniques.js';
import { ExperimentsController, ExperimentsService } from './api/experiments.js';
import { MemoryErrorsController, MemoryErrorsService } from './api/memory-errors.js';
import { VcpusController, VcpusService } from './api/vcpus.js';
import { MigrationsController, MigrationsService } from './api/migrations.js';
import { OperationsController, OperationsService } from './api/operations.js';
import { EventsGateway } from './api/events.gateway.js';
import { Metrics, MetricsController } from './api/observability.js';
import { IdempotencyInterceptor } from './api/idempotency.js';
import { ClusterService } from './cluster/cluster.service.js';
import { NodesController } from './cluster/nodes.controller.js';
import { IncomingMigrations, InternalMigrationsController } from './cluster/remote-migration.js';

/**
 * Session settings of the pool's connections: the schema, and in cluster mode
 * idle_in_transaction_session_timeout at the node timeout, so a node that stalls in the middle of
 * a transaction (holding, say, a tenant's event counter row) cannot block the other nodes for
 * longer than it takes to declare it lost: Postgres ends its session and frees its row locks.
 */
function pgOptions(c: Config): string {
  const o: string[] = [];
  if (c.schema !== 'public') o.push(`-c search_path=${c.schema}`);
  if (c.cluster) o.push(`-c idle_in_transaction_session_timeout=${c.cluster.timeoutMs}`);
  return o.join(' ');
}

export interface AppOptions { config: Config; databaseUrl: string; embedded: boolean; adminToken: string; metrics: Metrics }

@Module({})
export class AppModule {
  static forRoot(o: AppOptions): DynamicModule {
    return {
      module: AppModule,
      imports: [
        TerminusModule,
        TypeOrmModule.forRoot({
          type: 'postgres',
          url: o.databaseUrl,
          schema: o.config.schema,
          entities: ENTITIES,
          migrations: MIGRATIONS,
          migrationsRun: true,
          synchronize: false,
          poolSize: o.embedded ? 1 : 10,
          extra: {
            // A burst of requests queues for a connection rather than failing: the embedded
            // database has one (up to 60 s); a real server's pool of 10 up to 30 s, since every
            // transaction that appends an event holds its tenant's row (the event seq) and 200
            // concurrent creates of one tenant queued past 5 s on a busy machine (503s). An
            // unreachable server still answers 503 at once (refused) or after the wait.
            connectionTimeoutMillis: o.embedded ? 60_000 : 30_000,
            statement_timeout: 10000,
            ...(pgOptions(o.config) ? { options: pgOptions(o.config) } : {}),
          },
        }),
      ],
      controllers: [TenantsController, HostsController, ImagesController, VmsController, DomainsController, TechniquesController, ExperimentsController, MemoryErrorsController, MigrationsController, OperationsController, EventsController, HealthController, MetricsController, VcpusController, NodesController, InternalMigrationsController],
      providers: [
        { provide: CONFIG, useValue: { ...o.config, resolvedAdminToken: o.adminToken } },
        EventsService,
        HostsService,
        ImagesService,
        VmsService,
        DomainsService,
        RuntimeService,
        ExperimentsService,
        MemoryErrorsService,
        VcpusService,
        MigrationsService,
        OperationsService,
        EventsGateway,
        ClusterService,
        IncomingMigrations,
        IdempotencyInterceptor,
        { provide: Metrics, useValue: o.metrics },
        Authenticator,
        { provide: APP_GUARD, useClass: AuthGuard },
        { provide: APP_GUARD, useClass: InputGuard },
        { provide: APP_FILTER, useClass: ProblemFilter },
        { provide: APP_PIPE, useValue: new ValidationPipe({ whitelist: true, forbidNonWhitelisted: true, transform: true }) },
      ],
    };
  }
}
