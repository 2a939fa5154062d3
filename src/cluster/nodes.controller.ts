/** GET /v1/nodes (admin): the cluster's nodes, their hosts and heartbeats, and the leader. */
import { Controller, Get } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { AdminOnly } from '../api/auth.js';
import { ClusterService } from './cluster.service.js';

@ApiTags('nodes')
@ApiBearerAuth()
@Controller('v1/nodes')
export class NodesController {
  constructor(private readonly cluster: ClusterService) {}

  /** Every node with its hosts, heartbeat and capacity, and which one leads; on a single node `cluster: false` and no nodes. */
  @Get() @AdminOnly()
  list() { return this.cluster.nodes(); }
}
