/** The OpenAPI document, generated from the controllers and DTOs (npm run openapi writes openapi.yaml). */
import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import { stringify } from 'yaml';

export function openApiDocument(app: INestApplication): OpenAPIObject {
  const config = new DocumentBuilder()
    .setTitle('hvsim')
    .setDescription('Simulated hypervisor service: tenants, hosts, images, VM definitions, operations and events. Errors are RFC 9457 application/problem+json.')
    .setVersion('0.1.0')
    .addBearerAuth()
    .build();
  return SwaggerModule.createDocument(app, config);
}

export const openApiYaml = (app: INestApplication): string => stringify(openApiDocument(app), { sortMapEntries: true, aliasDuplicateObjects: false });
