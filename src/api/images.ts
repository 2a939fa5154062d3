/**
 * Images: static RV32 ELF executables (uploaded as bytes, or as base64 in JSON), or assembly
 * source assembled into an ELF on upload. Validated by the ISA toolkit's ELF loader; the same
 * bytes uploaded twice by one tenant return the existing image. Assembling, validation and the
 * digest run in a worker pool (one thread, a bounded queue), never on the main thread; what is
 * stored is at most imageMaxBytes, whatever the input.
 */
import { Body, Controller, Delete, Get, HttpCode, Inject, Injectable, OnModuleDestroy, Param, ParseUUIDPipe, Post, Query, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiTags, ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsOptional, IsString, Length } from 'class-validator';
import type { Request, Response } from 'express';
import { createHash } from 'node:crypto';
import { DataSource } from 'typeorm';
import { TenantId } from './auth.js';
import { Idempotent } from './idempotency.js';
import { conflict, notFound, ProblemError } from './errors.js';
import { EventsService } from './events.service.js';
import { ImageEntity } from '../persistence/entities.js';
import { parseElf32 } from '../isa/elf.js';
import { Piscina } from 'piscina';
import type { Prepared, PrepareTask } from './image-prepare.js';
import { CONFIG } from './tokens.js';
import type { Config } from '../config/config.js';
import { listPage, PageQuery } from './pagination.js';
import { BUILTIN_IMAGES, builtinElf } from '../runtime/workloads.js';
import { validateBody } from './validate.js';

export class CreateImageDto {
  @ApiProperty() @IsString() @Length(1, 200) name!: string;
  @ApiProperty() @IsIn(['elf', 'asm']) format!: 'elf' | 'asm';
  /** base64 ELF bytes (format elf) or assembly source text (format asm). */
  @ApiProperty() @IsString() content!: string;
}

export class ImageNameQuery {
  @ApiPropertyOptional() @IsOptional() @IsString() @Length(1, 200) name?: string;
}

export class ImageListQuery extends PageQuery {
  /** true: only the built-in workload images (materialized for the tenant on first use); false: only uploads. */
  @ApiPropertyOptional({ enum: ['true', 'false'] }) @IsOptional() @IsIn(['true', 'false']) builtin?: 'true' | 'false';
}

const BUILTIN_DESCRIPTION = new Map(BUILTIN_IMAGES.map((b) => [b.name, b.description]));

export const imageView = (i: ImageEntity) => ({
  id: i.id, name: i.name, format: i.format, sha256: i.sha256, entry: Number(i.entry), sizeBytes: i.sizeBytes,
  builtin: i.builtin, ...(i.builtin && BUILTIN_DESCRIPTION.has(i.name) ? { description: BUILTIN_DESCRIPTION.get(i.name) } : {}),
  createdAt: i.createdAt.toISOString(),
});

const unprocessable = (detail: string, extra: Record<string, unknown>) => new ProblemError(422, 'Unprocessable Content', detail, extra);

/** Uploads waiting for the pool beyond this are refused with 503. */
const UPLOAD_QUEUE = 32;

@Injectable()
export class ImagesService implements OnModuleDestroy {
  private pool: Piscina | null = null;

  constructor(private readonly ds: DataSource, private readonly events: EventsService, @Inject(CONFIG) private readonly config: Config) {}

  async onModuleDestroy(): Promise<void> { await this.pool?.destroy(); }

  /** Runs `task` in the upload pool. Raises: 503 when UPLOAD_QUEUE uploads are already waiting. */
  private async prepare(task: PrepareTask): Promise<Prepared> {
    // From TypeScript source (tests, tsx) the worker needs tsx's loader: a .mjs entry registers it.
    const ts = import.meta.url.endsWith('.ts');
    this.pool ??= new Piscina({
      filename: new URL(ts ? './image-prepare.boot.mjs' : './image-prepare.js', import.meta.url).href,
      minThreads: 0, maxThreads: 1, maxQueue: UPLOAD_QUEUE, idleTimeout: 60_000,
    });
    try {
      return await this.pool.run(task) as Prepared;
    } catch (e) {
      if (e instanceof Error && /queue is at limit/i.test(e.message)) {
        throw new ProblemError(503, 'Service Unavailable', `${UPLOAD_QUEUE} uploads are already waiting to be processed; retry later`);
      }
      throw e;
    }
  }

  /** Validates and stores an image. Raises 413 (ELF over imageMaxBytes), 422 (malformed ELF or assembly errors, output over imageMaxBytes), 503 (pool full). */
  async create(tenantId: string, name: string, format: 'elf' | 'asm', bytes: Buffer | null, source: string | null) {
    const max = this.config.imageMaxBytes;
    if (bytes && bytes.length > max) throw new ProblemError(413, 'Content Too Large', `the image is ${bytes.length} bytes; the limit is ${max}`);
    const p = await this.prepare(format === 'asm' ? { format, source: source ?? '', fileName: name, maxBytes: max } : { format, bytes: bytes! });
    if (!p.ok && 'asmProblems' in p) throw unprocessable(`assembly failed: ${p.asmProblems.length} error(s)`, { errors: p.asmProblems });
    if (!p.ok) throw unprocessable(`not a valid static RV32 executable: ${p.elfError.message} (at offset ${p.elfError.offset})`, { offset: p.elfError.offset });
    const { entry, sha256 } = p;
    const elf = Buffer.from(p.elf.buffer, p.elf.byteOffset, p.elf.length);
    const repo = this.ds.getRepository(ImageEntity);
    const existing = await repo.findOneBy({ tenantId, sha256 });
    if (existing) return { created: false, image: imageView(existing) };
    return this.events.tx(async (m) => {
      const img = await m.save(m.create(ImageEntity, { tenantId, name, format, sha256, sizeBytes: elf.length, entry: String(entry), source, content: elf }));
      await this.events.append(m, tenantId, 'image.created', `image:${img.id}`, { name, format, sha256, sizeBytes: elf.length });
      return { created: true, image: imageView(img) };
    });
  }

  async get(tenantId: string, id: string): Promise<ImageEntity> {
    const i = await this.ds.getRepository(ImageEntity).findOneBy({ id, tenantId });
    if (!i) throw notFound('image', id);
    return i;
  }

  async content(tenantId: string, id: string): Promise<Buffer> {
    const row = await this.ds.getRepository(ImageEntity).createQueryBuilder('i').addSelect('i.content')
      .where('i.id = :id AND i.tenant_id = :tenantId', { id, tenantId }).getOne();
    if (!row) throw notFound('image', id);
    return row.content;
  }

  /**
   * Makes sure the tenant has every built-in workload image (workloads/bin) as an image row; an
   * upload of the same bytes becomes the built-in row. Idempotent.
   */
  async ensureBuiltins(tenantId: string): Promise<void> {
    const repo = this.ds.getRepository(ImageEntity);
    for (const b of BUILTIN_IMAGES) {
      const elf = Buffer.from(builtinElf(b.name));
      const sha256 = createHash('sha256').update(elf).digest('hex');
      const row = await repo.findOneBy({ tenantId, sha256 });
      if (row?.builtin) continue;
      if (row) { await repo.update({ id: row.id }, { builtin: true }); continue; }
      await this.events.tx(async (m) => {
        const img = await m.save(m.create(ImageEntity, {
          tenantId, name: b.name, format: 'elf', sha256, sizeBytes: elf.length, entry: String(parseElf32(new Uint8Array(elf)).entry), source: null, content: elf, builtin: true,
        }));
        await this.events.append(m, tenantId, 'image.created', `image:${img.id}`, { name: b.name, format: 'elf', sha256, sizeBytes: elf.length, builtin: true });
      });
    }
  }

  async list(tenantId: string, q: ImageListQuery) {
    if (q.builtin !== 'false') await this.ensureBuiltins(tenantId);
    const where = q.builtin === undefined ? {} : { builtin: q.builtin === 'true' };
    return listPage(this.ds.getRepository(ImageEntity), tenantId, q, imageView, where);
  }

  /** Deletes an image. Raises: 404, or 409 while a VM definition uses it. */
  async remove(tenantId: string, id: string) {
    await this.events.tx(async (m) => {
      const img = await m.findOneBy(ImageEntity, { id, tenantId });
      if (!img) throw notFound('image', id);
      const users: Array<{ vm_id: string }> = await m.query('SELECT vm_id FROM vm_images WHERE image_id = $1', [id]);
      if (users.length) throw conflict(`image ${id} is used by ${users.length} VM definition(s)`, { vmIds: users.map((u) => u.vm_id) });
      await m.delete(ImageEntity, { id });
      await this.events.append(m, tenantId, 'image.deleted', `image:${id}`, { name: img.name });
    });
  }
}

@ApiTags('images')
@ApiBearerAuth()
@Controller('v1/images')
export class ImagesController {
  constructor(private readonly images: ImagesService) {}

  /**
   * Upload: `application/octet-stream` ELF bytes (name from `?name=`), or JSON
   * `{name, format: "elf"|"asm", content}` with base64 for ELF. 201 for a new image, 200 when the
   * tenant already has these exact bytes.
   */
  @Post() @Idempotent()
  async create(@TenantId() t: string, @Req() req: Request, @Res({ passthrough: true }) res: Response, @Query() q: ImageNameQuery, @Body() body: CreateImageDto | Buffer) {
    let r;
    if (Buffer.isBuffer(req.body)) {
      r = await this.images.create(t, q.name ?? 'image', 'elf', req.body, null);
    } else {
      const dto = await validateBody(CreateImageDto, body);
      if (dto.format === 'elf') {
        if (!/^[A-Za-z0-9+/=\s]*$/.test(dto.content)) throw new ProblemError(400, 'Bad Request', 'content must be base64 for format elf');
        r = await this.images.create(t, dto.name, 'elf', Buffer.from(dto.content, 'base64'), null);
      } else r = await this.images.create(t, dto.name, 'asm', null, dto.content);
    }
    res.status(r.created ? 201 : 200);
    return r.image;
  }

  /** The tenant's images; `?builtin=true` lists the built-in workloads (hello, cpu, syscalls, memtouch). */
  @Get()
  list(@TenantId() t: string, @Query() q: ImageListQuery) { return this.images.list(t, q); }

  @Get(':id')
  async get(@TenantId() t: string, @Param('id', ParseUUIDPipe) id: string) { return imageView(await this.images.get(t, id)); }

  @Get(':id/content')
  async content(@TenantId() t: string, @Param('id', ParseUUIDPipe) id: string, @Res() res: Response) {
    const bytes = await this.images.content(t, id);
    res.type('application/octet-stream').send(bytes);
  }

  @Delete(':id') @HttpCode(204)
  remove(@TenantId() t: string, @Param('id', ParseUUIDPipe) id: string) { return this.images.remove(t, id); }
}
