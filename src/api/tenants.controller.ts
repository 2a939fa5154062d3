import { Body, Controller, HttpCode, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiTags, ApiProperty } from '@nestjs/swagger';
import { IsString, Length } from 'class-validator';
import { AdminOnly, hashToken, newToken } from './auth.js';
import { TenantEntity } from '../persistence/entities.js';
import { EventsService } from './events.service.js';

export class CreateTenantDto {
  @ApiProperty() @IsString() @Length(1, 100) name!: string;
}

@ApiTags('tenants')
@ApiBearerAuth()
@Controller('v1/tenants')
export class TenantsController {
  constructor(private readonly events: EventsService) {}

  /** Creates a tenant and returns its token, once (only a hash is stored). Admin only. */
  @Post()
  @AdminOnly()
  @HttpCode(201)
  async create(@Body() body: CreateTenantDto) {
    const token = newToken('hvt');
    return this.events.tx(async (m) => {
      const t = await m.save(m.create(TenantEntity, { name: body.name, tokenHash: hashToken(token) }));
      await this.events.append(m, t.id, 'tenant.created', `tenant:${t.id}`, { name: t.name });
      return { id: t.id, name: t.name, token, createdAt: t.createdAt.toISOString() };
    });
  }
}
